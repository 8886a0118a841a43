"""Push over APNs for notifications no socket received (CONTRACT.md §6).

One module per job: `provider_token` (the ES256 JWT Apple wants), `payload` (the §6 body),
`apns` (one HTTP/2 client per gateway), `policy` (what each APNs answer means: retry, renew,
remove, give up), `service` (the bounded queue and the tasks serving it) and `devices_api` (the
REST routes that register devices). Nothing here is imported unless push is configured, except
the routes, so a server without the `push` extra still registers devices.
"""
