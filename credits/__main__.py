from credits.cli import cli

cli(prog_name="python -m credits")
