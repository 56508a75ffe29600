"""Helpers for the console's tests: a console key, operators, sign-in and form tokens."""

import re

KEY = "console-key-for-tests-0123456789abcdef"
PASSWORD = "correct horse battery"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')
GRANT_KEY = re.compile(r'name="key" value="([^"]+)"')


def token(page):
    """The CSRF token of the page's first form."""
    return TOKEN.search(page.text).group(1)


def sign_in(client, name, password=PASSWORD):
    """Sign in with the login form; answers the POST's response."""
    page = client.get("/admin/login")
    return client.post(
        "/admin/login", data={"name": name, "password": password, "csrf_token": token(page)}
    )
