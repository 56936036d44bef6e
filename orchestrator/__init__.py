"""fresh-sandbox host side: everything that decides. Never imports docker."""
