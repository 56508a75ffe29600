"""Request bodies for tests of what the service reads."""

import io


class UnreadableBody(io.BytesIO):
    """A request body that fails the test if the service reads a byte of it."""

    def read(self, *args):
        raise AssertionError("the body was read")

    readline = readinto = read
