"""Pages for domain admins (Domain Settings) and system admins (domains, audit)."""
