"""One module per command family; `table.py` lists every command and its handler."""
