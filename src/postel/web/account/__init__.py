"""Pages a user sees: logon, "Forgot your password?", My Settings."""
