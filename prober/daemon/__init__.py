"""The daemon's parts: runners and their schedule, history, snapshots, metrics, the HTTP
server, the status page, sharding and the web config."""
