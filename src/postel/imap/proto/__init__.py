"""The sans-IO IMAP wire layer: framing, parsing and serializing, with no sockets."""
