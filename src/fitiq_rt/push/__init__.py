"""Push over APNs for notifications no socket received (CONTRACT.md §6).

One module per job: `provider_token` (the ES256 JWT Apple wants), `payload` (the §6 body),
`apns` (one HTTP/2 client per gateway), `policy` (what each APNs answer means: retry, renew,
remove, give up) and `service` (the bounded queue and the tasks serving it). The routes that
register devices are in `rest.device_routes`. Nothing here is imported unless push is
configured, so a server without the `push` extra still registers devices.
"""
