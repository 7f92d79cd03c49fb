"""Who really sent a message: SPF, DKIM and DMARC over a DNS resolver interface, and the
Authentication-Results header (RFC 8601) that records the verdicts."""
