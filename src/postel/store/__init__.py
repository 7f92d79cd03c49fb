"""Storage: the one surface protocol code uses for accounts, mailboxes and messages."""
