"""The `saas dev` supervisor, its PID file, the dev mail sink and its /dev/mail view."""
