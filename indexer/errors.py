"""The error type every layer raises for problems a user can fix.

The CLI prints its message as one line (a traceback only with ``--debug``); the MCP server turns it into a
``ToolError`` the model reads. So the message must say what went wrong, with which file, and what to do next.
"""


class UserError(Exception):
    """A problem the user (or the assistant) can act on. The message is shown as is."""
