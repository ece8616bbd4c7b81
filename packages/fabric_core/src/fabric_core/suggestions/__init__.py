"""Column suggestions: which catalog columns likely mean a unified column, or each other."""
