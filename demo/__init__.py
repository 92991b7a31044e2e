"""The POP3 Mail demo: a sample mailbox served over POP3 and a ready Home Assistant.

Run it with `scripts/demo` (see `demo.run`); `demo.content` is the sample mail,
`demo.mailserver` the POP3 server that serves it and delivers more, `demo.bootstrap`
seeds the Home Assistant config folder, `demo.ha_api` talks to the running instance.
"""
