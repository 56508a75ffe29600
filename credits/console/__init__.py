"""The operators' console at /admin (docs/CONSOLE.md): site.py sets it up in the app; auth.py,
pages.py and actions.py are its pages; operators.py and cli.py the operators; settings.py its key.
This package imports no web module itself, so the command line can use its operators."""
