"""What every sandbox counterpart is built on, so that each sandbox keeps only its protocol and its rules.

| module | what |
| --- | --- |
| `server` | serving a WSGI app with waitress: on a thread (a handle with `url`, `admin`, `stop()`) or blocking; a free port; a sandbox as a child process (benchmarks) |
| `app` | WSGI plumbing: api-key check, routing, JSON bodies and replies |
| `admin` | the client side of the JSON admin endpoints: the HTTP call and its error |
| `ledger` | the SQLite file behind a process-wide lock, one IMMEDIATE transaction per write |
| `faults` | what a refused fault switch raises |

Plain Python, no Django: the sandboxes stand in for services that are not ours.
"""
