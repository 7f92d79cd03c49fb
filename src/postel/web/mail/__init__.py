"""The webmail: the app shell page, its JSON API (/api/v1/mail), MIME rendering,
sanitising, compose and live updates."""
