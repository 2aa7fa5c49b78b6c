#!/usr/bin/env python3
"""Writes docs/examples.md from real answers of the local server.

    ./scripts/run --in-memory &      # prints API=... and JWT=...
    API=http://127.0.0.1:3000 JWT=... python3 scripts/examples.py > docs/examples.md

Each command is run with curl; the answer is shown with its status line, the headers that do not
change from request to request, and its JSON body with sorted keys.
"""
import json
import os
import re
import shlex
import subprocess
import sys

API = os.environ["API"]
ENV = {"API": API, "JWT": os.environ["JWT"]}
LEFT_OUT = {"apigw-requestid", "date", "content-length", "cache-control", "x-content-type-options"}


def run(command, keep_all_headers=False):
    """Runs `command` (shell syntax, $API and friends expanded); returns the shown text and body."""
    expanded = command
    for name, value in sorted(ENV.items(), key=lambda kv: -len(kv[0])):
        expanded = expanded.replace("$" + name, value)
    out = subprocess.run(shlex.split(expanded), capture_output=True, text=True, check=True).stdout
    head, _, body = out.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    shown = [lines[0].strip()]
    for line in sorted(lines[1:]):
        name = line.split(":", 1)[0].lower()
        if keep_all_headers and name not in {"apigw-requestid", "date", "content-length"}:
            shown.append(line.strip())
        elif name not in LEFT_OUT:
            shown.append(line.strip())
    parsed = None
    if body.strip():
        parsed = json.loads(body)
        shown.append("")
        shown.append(json.dumps(parsed, sort_keys=True, separators=(",", ":")))
    return "$ " + command + "\n" + "\n".join(shown), parsed


def section(title, intro, *blocks):
    print(f"## {title}\n\n{intro}\n\n```")
    print("\n\n".join(blocks))
    print("```\n")


def main():
    print("""# Examples

Every route, with its real answer from the local server (`./scripts/run --in-memory`, see
[Running locally](local-run.md); `$API` and `$JWT` as it prints them; the secrets are local
throwaway tokens), written by `scripts/examples.py`. Headers that change on every request
(`apigw-requestid`, `date`, `content-length`) are left out of the answers shown, and so are the
two every answer of the bundle's functions carries: `cache-control: no-store` (a create answer
holds a secret) and `x-content-type-options: nosniff`.
""")
    auth = '-H "Authorization: Bearer $JWT"'
    json_type = '-H "Content-Type: application/json"'
    text, created = run(f"curl -sS -i -X POST \"$API/api/v1/user/apptoken\" {auth} {json_type} -d '{{\"title\": \"ci pipeline\"}}'")
    uuid = created["token"]["uuid"]
    ENV["UUID"] = uuid
    section("Quay: create", "`POST /api/v1/user/apptoken`; without `scopes`, the token gets all the session may grant:", text)
    text, scoped = run(f"curl -sS -i -X POST \"$API/api/v1/user/apptoken\" {auth} {json_type} -d '{{\"title\": \"registry pull\", \"scopes\": [\"repo:read\"]}}'")
    ENV["READER"] = scoped["token"]["token_code"]
    denied, _ = run(f"curl -sS -i \"$API/api/v1/user/apptoken\" -H \"Authorization: Bearer $READER\"", keep_all_headers=True)
    section("Quay: create with scopes", "A `repo:read` token, which cannot list (or create, or revoke) tokens ([Scopes](../README.md#scopes)):", text, denied)
    text, _ = run(f"curl -sS -i \"$API/api/v1/user/apptoken\" {auth}")
    section("Quay: list", "`GET /api/v1/user/apptoken` (`?expiring=true` lists only those expiring soon):", text)
    text, _ = run(f"curl -sS -i \"$API/api/v1/user/apptoken/$UUID\" {auth}")
    section("Quay: get", f"`GET /api/v1/user/apptoken/{{token_uuid}}`, with `UUID={uuid}`:", text)
    text, pat = run(f"curl -sS -i -X POST \"$API/api/admin/user/tokens\" {auth} {json_type} -d '{{\"description\": \"deploy bot\", \"expiresAt\": \"2027-06-01T00:00:00.000Z\"}}'")
    section("Unleash: create", "`POST /api/admin/user/tokens`:", text)
    _, third = run(f"curl -sS -i -X POST \"$API/api/admin/user/tokens\" {auth} {json_type} -d '{{\"description\": \"scripts\", \"expiresAt\": \"2027-06-01T00:00:00.000Z\", \"scopes\": [\"user:admin\"]}}'")
    ENV["PAT"] = third["secret"]
    text, _ = run("curl -sS -i \"$API/api/admin/user/tokens\" -H \"Authorization: Bearer $PAT\"")
    section("Unleash: list", f"`GET /api/admin/user/tokens`, authenticated by a token (`PAT={third['secret']}`, the secret of a `user:admin` one, \"scripts\", created the same way): the tokens of both dialects, and this one's `seenAt` set by its use:", text)
    text, rotated = run(f"curl -sS -i -X POST \"$API/api/v1/user/apptoken/$UUID/rotate\" {auth} {json_type} -d '{{\"grace\": \"1h\"}}'")
    section("Quay: rotate", "`POST /api/v1/user/apptoken/{token_uuid}/rotate`: the same token with a new secret; the old one keeps working for an hour ([Rotation](../README.md#rotation)):", text)
    text, _ = run(f"curl -sS -i -X POST \"$API/api/admin/user/tokens/{pat['id']}/rotate\" {auth}")
    section("Unleash: rotate", "`POST /api/admin/user/tokens/{id}/rotate`, without a body: no grace, the default lifetime:", text)
    text, mine = run("curl -sS -i -X POST \"$API/api/v1/user/apptoken/self/rotate\" -H \"Authorization: Bearer $PAT\"")
    ENV["OLD"] = third["secret"]
    reused, _ = run("curl -sS -i -X POST \"$API/api/v1/user/apptoken/self/rotate\" -H \"Authorization: Bearer $OLD\"", keep_all_headers=True)
    section("Rotate itself", "`POST /api/v1/user/apptoken/self/rotate` with `PAT`: a token rotates itself. Presented again after its grace (none here), the old secret means someone else holds a copy, and the whole token is revoked:", text, reused)
    text, _ = run(f"curl -sS -i -X DELETE \"$API/api/v1/user/apptoken/$UUID\" {auth}")
    section("Quay: revoke", "`DELETE /api/v1/user/apptoken/{token_uuid}` (every secret of the token, the one in its grace too):", text)
    ENV["PAT2"] = rotated["token"]["token_code"]
    text, _ = run(f"curl -sS -i -X DELETE \"$API/api/admin/user/tokens/{pat['id']}\" {auth}")
    section("Unleash: delete", "`DELETE /api/admin/user/tokens/{id}`:", text)
    text, _ = run(f"curl -sS -i \"$API/api/v1/user/logs\" {auth}")
    section("Audit log", "`GET /api/v1/user/logs` (Quay's `listUserLogs`; `?starttime=MM/DD/YYYY&endtime=...`, `next_page`): everything above, newest first ([Audit log](../README.md#audit-log)):", text)
    errors = [
        run("curl -sS -i \"$API/api/v1/user/apptoken\"", keep_all_headers=True)[0],
        run(f"curl -sS -i \"$API/api/v1/user/tokens\" {auth}")[0],
        run("curl -sS -i -X PUT \"$API/api/admin/user/tokens\"")[0],
        run("curl -sS -i \"$API/favicon.ico\"")[0],
        run(f"curl -sS -i -X POST \"$API/api/v1/user/apptoken\" {auth} -d \"title=x\"")[0],
        run(f"curl -sS -i -X POST \"$API/api/admin/user/tokens\" {auth} {json_type} -d '{{\"description\": \" \", \"expiresAt\": \"2027-01-01T00:00:00.000Z\"}}'")[0],
        run(f"curl -sS -i -X POST \"$API/api/v1/user/apptoken\" {auth} {json_type} -d '{{\"title\": \"x\", \"scopes\": [\"repo:wrote\"]}}'")[0],
        run(f"curl -sS -i \"$API/api/v1/user/logs?starttime=2026-11-28\" {auth}")[0],
    ]
    section("Errors", "The route's own for no credentials (in its dialect, with both challenges), the `$default` route's (no route: a 404 in the path's dialect, a 405 with `Allow` for a known path asked with another method, API Gateway's body elsewhere) and each dialect's:", *errors)
    print("The authorizer's own request and answers are in [the authorizer](authorizer.md#what-it-answers).")


if __name__ == "__main__":
    sys.exit(main())
