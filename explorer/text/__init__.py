"""Text from users (addresses, file names, text boxes) made safe to show: escaped, cut, never markup."""

from explorer import lazy_exports

# Each name is imported from its module when first used: importing the package imports nothing else, so
# that threads importing its modules at once (a server's sessions, its warm-up) never wait on each other.
__all__, __getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "messages": ("headline",),
        "usertext": ("LIMIT", "WORD_JOINER", "cleaned", "parse_int", "quoted", "shown"),
    },
)
