"""POP3 (RFC 1939) with CAPA, STLS, SASL and UTF8: proto (sans-IO), session (policy), server."""
