"""What every command shares: the one-line error."""


class CliError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""
