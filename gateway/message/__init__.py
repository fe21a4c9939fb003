"""Reading a message: the parsed, read-only view that every check sees."""
