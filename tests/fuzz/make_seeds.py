#!/usr/bin/env python3
"""make_seeds.py - write the seed corpora in corpus/<target>/ (run once;
the files are checked in). Small realistic inputs, valid and invalid, taken
from the unit tests (tests/unit), the fakes (tests/fakes) and the wire
formats in docs/internals/backends.md. Inputs that crashed a target are
added by hand as corpus/<target>/crash-<what> and are never regenerated.

The binary targets (vault, aws, aws_creds, azure) read byte 0 as the answer kind
and byte 1 as the HTTP status (+ the path asked about); see their sources."""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STATUS = {200: 0, 204: 1, 400: 2, 403: 3, 404: 4, 429: 5, 500: 6, 503: 7}


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def j(o):
    return json.dumps(o, separators=(",", ":"))


def answer(target, name, kind, status, body, path=0):
    put(target, name, bytes([kind, STATUS[status] | (path << 3)]) + (
        body.encode() if isinstance(body, str) else body))


# ---- config (docs/config.md, tests/unit/test_config.c) ----
full = """{
  "mount": "/run/secrets",
  "defaults": {"refresh": "5m", "max_stale": "1h", "mode": "0400", "uid": 0, "gid": 0},
  "backends": {
    "local": {"type": "file", "path": "/"}
  },
  "secrets": {
    "db_password": {"from": "local:db_password", "refresh": "30s", "mode": "0440", "uid": 1000, "gid": 1000},
    "app/db_user": {"from": "local:db.json#user"}
  }
}
"""
put("config", "full.json", full)
put("config", "empty.json", "{}")
put("config", "vault.json", j({
    "backends": {"vault": {"type": "vault", "address": "https://vault.internal:8200",
                           "namespace": "team-a",
                           "auth": {"method": "approle", "role_id": "r-1"},
                           "kv_versions": {"secret": 2, "legacy": 1},
                           "revoke_on_shutdown": True}},
    "secrets": {"db": "vault:secret/db#password",
                "old": {"from": "vault:secret/db?version=3", "max_stale": "2h"},
                "pg/creds": "vault:database/creds/ro"}}))
put("config", "vault-token.json", j({
    "backends": {"v": {"type": "vault", "address": "http://127.0.0.1:8200",
                       "auth": {"method": "token", "mount": "token"}}},
    "secrets": {"a": "v:kv/a"}}))
put("config", "aws.json", j({
    "backends": {"aws": {"type": "aws", "region": "eu-west-1", "profile": "prod",
                         "endpoint": "https://vpce-123.secretsmanager.eu-west-1.vpce.amazonaws.com",
                         "sts_endpoint": "https://sts.eu-west-1.amazonaws.com", "batch": False,
                         "max_size": 65536, "retry_base": "1s", "retry_max": "5m"}},
    "secrets": {"api": "aws:prod/api#key",
                "tls.crt": {"from": "aws:arn:aws:secretsmanager:eu-west-1:1:secret:tls?stage=AWSPREVIOUS",
                            "mode": "0444"}}}))
for i, bad in enumerate([
        '{\n  "mount": "/x",\n}', '{"mount": "/a", "mount": "/b"}', '{\n  "mout": "/x"\n}',
        '{"mount": "relative"}', '{"mount": 5}', '{"defaults": []}', '{"backends": "x"}',
        '{"secrets": 1}', '{"defaults": {"mode": 400}}', '{"defaults": {"mode": "0999"}}',
        '{"defaults": {"mode": "4755"}}', '{"defaults": {"uid": -1}}',
        '{"defaults": {"gid": "root"}}', '{"defaults": {"colour": 1}}',
        '{"defaults": {"refresh": "5x"}}', '{"defaults": {"refresh": 0}}',
        '{"defaults": {"refresh": "1h", "max_stale": "5m"}}',
        '{"backends": {"local": {"type": "fiel", "path": "/"}}}',
        '{"backends": {"local": {"path": "/"}}}',
        '{"backends": {"local": {"type": "file", "path": "rel"}}}',
        '{"backends": {"local": {"type": "file", "path": "/", "pth": 1}}}',
        '{"backends": {"local": {"type": "file", "path": "/", "max_size": 0}}}',
        '{"backends": {"local": []}}',
        '{"backends": {"local": {"type": "file", "path": "/"}}, "secrets": {"a": "lcoal:x"}}',
        '{"backends": {"local": {"type": "file", "path": "/"}}, "secrets": {"a": "local:x", "a/b": "local:y"}}',
        '{"backends": {"local": {"type": "file", "path": "/"}}, "secrets": {"../x": "local:x"}}',
        '{"backends": {"local": {"type": "file", "path": "/"}}, "secrets": {"tls.crt": {"mode": "0777"}}}',
        '{"backends": {"v": {"type": "vault", "address": "ftp://x", "auth": {"method": "approle"}}}}',
        '{"backends": {"v": {"type": "vault", "address": "https://v", "auth": {"method": "oidc"}}}}',
        '{"backends": {"a": {"type": "aws", "region": "eu west"}}}',
        '[1, 2]', '"text"', '{"secrets": {"a\\u00e9": "x:y"}}']):
    put("config", "bad-%02d.json" % i, bad)

# ---- ref (tests/unit/test_ref.c) ----
for i, s in enumerate([
        "local:db/password", "vault:secret/data/db#password", "vault:secret/data/db?version=3",
        "vault:kv/app?version=3#user", "aws:arn:aws:secretsmanager:eu-west-1:1:secret:x",
        "gcp:projects/p/secrets/s?version=latest", "f:x#/a/b", "f:x#/a~1b/~0c/0", "f:x#/",
        "f:x#a#b?c:d", "f:x#weird key", "f:x#~2", "f:x?version=a=b#k", "f:with space/and:colon",
        "my-backend_2:p", "f:caf\xc3\xa9", "aws:arn:aws:secretsmanager:r:1:secret:db?stage=AWSPREVIOUS#pw",
        "local:", "local:x?", "local:x?v=1", "local:x?version=1&x=2", "local:x?version=",
        "local:x?version=1&version=2", "local:x?version=1&", "local:x?version=1?version=2",
        "aws:x?version=1&stage=AWSCURRENT", "local:x#", "local:x#/a~2", "local:x\ty", "noref",
        ":x", "a b:c"]):
    put("ref", "ref-%02d" % i, s)

# ---- duration (tests/unit/test_duration.c) ----
for i, s in enumerate([
        "90s", "5m", "1h30m", "2d", "1h30m15s", "300", "1d2h3m4s", "007s", "3650d",
        "315360000", "3649d23h59m59s", "", "-5", "0s", "1.5h", "5 m", "5ms", "30m1h", "1m2m",
        "1h5", "h", "+5m", "3651d", "99999999999999999999999s", "9223372036854775808", "1e3",
        "90", '"1h"', "-30", "true", "1.0"]):
    put("duration", "d-%02d" % i, s)

# ---- name (tests/unit/test_name.c) ----
for i, s in enumerate([
        "db_password", "app/db_user", "tls.crt", "a/b/c/d/e/f/g/h", "a/b/c/d/e/f/g/h/i", "",
        "/abs", "a//b", "a/", ".", "..", "a/../b", "a b", "caf\xc3\xa9", "x" * 256, "-", "a-b_c.d"]):
    put("name", "n-%02d" % i, s)

# ---- extract (tests/unit/test_extract.c): field NUL document ----
doc = j({"user": "app", "password": "s3cr3t-db-passw0rd", "port": 5432,
         "db": {"hosts": ["a", "b"], "tls": True, "a/b": 1, "m~n": None}})
for i, (field, d) in enumerate([
        ("user", doc), ("password", doc), ("port", doc), ("db", doc), ("/db/hosts/1", doc),
        ("/db/a~1b", doc), ("/db/m~0n", doc), ("/", doc), ("/db/hosts/-", doc),
        ("/db/hosts/01", doc), ("/port/x", doc), ("missing", doc), ("/0", '["s3cr3t-x", 2]'),
        ("k", '["a"]'), ("k", '"just a string"'), ("k", "not json s3cr3t"),
        ("k", '{"k": "a\\u0000b"}'), ("k", '{"k": 1e400}'), ("k", '{"k": [[[[[]]]]]}'),
        ("k", ""), ("/a~", '{"a": 1}'), ("k", '{"k": "x", "k": "y"}'), ("k", '{"k": 1.5e300}')]):
    put("extract", "e-%02d" % i, field.encode() + b"\0" + d.encode())

# ---- ini (tests/unit/test_aws_creds.c) ----
for i, s in enumerate([
        "# comment\n[default]\naws_access_key_id = AKIA1\n; another\nAWS_Secret_Access_Key=s1\n"
        "[profile prod]\nregion = eu-west-1\ns3 =\n  max_concurrent_requests = 20\n",
        "[default]\naws_access_key_id = FILEKEY\naws_secret_access_key = f\n",
        "[profile prod]\naws_access_key_id = CFGKEY\naws_secret_access_key = c\n",
        "[default]\ncredential_process = /usr/bin/creds --flag\n",
        "[profile r]\nrole_arn = arn:aws:iam::1:role/x\nsource_profile = default\n",
        "[a\nk=v\n", "[a]\njunk\n", "k=v\n", "[ sp ]\r\n key = v \r\n", "[]\n=\n", "\n\n[x]"]):
    put("ini", "i-%02d" % i, s)

# ---- vault (tests/fakes/vault.py; kinds as in fuzz_vault.c) ----
LOGIN, LOOKUP, RENEW_SELF, MOUNT, READ_KV1, READ_KV2, LEASE_RENEW = range(7)
answer("vault", "login", LOGIN, 200, j({"auth": {"client_token": "hvs.s3cr3t-token",
        "accessor": "a", "policies": ["default"], "lease_duration": 3600, "renewable": True}}))
answer("vault", "login-no-token", LOGIN, 200, j({"auth": None}))
answer("vault", "login-denied", LOGIN, 400, j({"errors": ["invalid role or secret ID"]}))
answer("vault", "login-html", LOGIN, 503, "<html>Service Unavailable</html>")
answer("vault", "lookup", LOOKUP, 200, j({"data": {"ttl": 2764800, "creation_ttl": 2764800,
        "period": None, "renewable": True, "policies": ["default"]}}))
answer("vault", "lookup-root", LOOKUP, 200, j({"data": {"ttl": 0, "renewable": False}}))
answer("vault", "lookup-403", LOOKUP, 403, j({"errors": ["permission denied"]}))
answer("vault", "renew-self", RENEW_SELF, 200, j({"auth": {"client_token": "hvs.s3cr3t",
        "lease_duration": 768, "renewable": True}}))
answer("vault", "renew-self-refused", RENEW_SELF, 403, j({"errors": ["permission denied"]}))
answer("vault", "renew-self-500", RENEW_SELF, 500, j({"errors": []}))
answer("vault", "mount-kv2", MOUNT, 200, j({"data": {"path": "secret/", "type": "kv",
        "options": {"version": "2"}}}))
answer("vault", "mount-kv1", MOUNT, 200, j({"data": {"path": "kv/", "type": "kv",
        "options": None}}), path=1)
answer("vault", "mount-db", MOUNT, 200, j({"data": {"path": "database/", "type": "database"}}),
       path=2)
answer("vault", "mount-wrong", MOUNT, 200, j({"data": {"path": "other/", "type": "kv"}}))
answer("vault", "mount-404", MOUNT, 404, "")
answer("vault", "mount-403", MOUNT, 403, j({"errors": ["1 error occurred:\n\t* permission denied\n\n"]}))
answer("vault", "read-kv1", READ_KV1, 200, j({"request_id": "r", "lease_id": "", "renewable": False,
        "lease_duration": 2764800, "data": {"password": "s3cr3t-db-passw0rd", "user": "app"}}))
answer("vault", "read-kv2", READ_KV2, 200, j({"data": {"data": {"password": "s3cr3t-db-passw0rd"},
        "metadata": {"version": 3, "deletion_time": ""}}}))
answer("vault", "read-kv2-deleted", READ_KV2, 200, j({"data": {"data": None,
        "metadata": {"version": 2, "deletion_time": "2024-01-01T00:00:00Z"}}}))
answer("vault", "read-kv2-404", READ_KV2, 404, j({"errors": []}))
answer("vault", "read-db", READ_KV1, 200, j({"lease_id": "database/creds/ro/abc123",
        "lease_duration": 3600, "renewable": True,
        "data": {"username": "v-ro-1", "password": "s3cr3t-A1a-xyz"}}), path=2)
answer("vault", "read-array", READ_KV1, 200, j({"data": ["s3cr3t-in-array"]}))
answer("vault", "read-429", READ_KV1, 429, j({"errors": ["rate limited"]}))
answer("vault", "lease-renew", LEASE_RENEW, 200, j({"lease_id": "database/creds/ro/abc123",
        "lease_duration": 3600, "renewable": True}))
answer("vault", "lease-renew-capped", LEASE_RENEW, 200, j({"lease_duration": 12}))
answer("vault", "lease-renew-400", LEASE_RENEW, 400, j({"errors": ["lease not found"]}))
answer("vault", "lease-renew-garbage", LEASE_RENEW, 200, "null")

# ---- aws (docs/internals/backends.md, tests/fakes/aws_proxy.py; kinds as in fuzz_aws.c) ----
GET, DESCRIBE, BATCH, ERROR_BODY = range(4)
VID = "0e2b5e4c-1111-4222-8333-944445555666"
ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:prod/api-AbCdEf"
answer("aws", "get-string", GET, 200, j({"ARN": ARN, "Name": "prod/db", "VersionId": VID,
        "SecretString": "s3cr3t-db-passw0rd", "VersionStages": ["AWSCURRENT"],
        "CreatedDate": 1700000000.5}))
answer("aws", "get-binary", GET, 200, j({"Name": "prod/tls", "VersionId": VID,
        "SecretBinary": "czNjcjN0LWJpbmFyeQ=="}), path=2)
answer("aws", "get-bad-base64", GET, 200, j({"Name": "prod/tls", "SecretBinary": "s3cr3t!!"}))
answer("aws", "get-neither", GET, 200, j({"Name": "prod/db"}))
answer("aws", "get-404", GET, 400, j({"__type": "ResourceNotFoundException",
        "message": "Secrets Manager can't find the specified secret."}))
answer("aws", "get-deleted", GET, 400, j({"__type": "com.amazonaws#InvalidRequestException",
        "Message": "You can't perform this operation on the secret because it was marked for deletion."}))
answer("aws", "get-throttled", GET, 400, j({"__type": "ThrottlingException", "message": "Rate exceeded"}))
answer("aws", "get-xml-403", GET, 403, "<ErrorResponse><Error><Type>Sender</Type>"
       "<Code>InvalidClientTokenId</Code><Message>The security token included in the request is "
       "invalid.</Message></Error></ErrorResponse>")
answer("aws", "describe", DESCRIBE, 200, j({"ARN": ARN, "Name": "prod/db",
        "VersionIdsToStages": {VID: ["AWSCURRENT"], "old-1": ["AWSPREVIOUS"]}}))
answer("aws", "describe-pinned", DESCRIBE, 200, j({"Name": "prod/tls",
        "VersionIdsToStages": {VID: []}}), path=2)
answer("aws", "describe-deleted", DESCRIBE, 200, j({"Name": "prod/db", "DeletedDate": 1700000000,
        "VersionIdsToStages": {}}))
answer("aws", "describe-no-map", DESCRIBE, 200, j({"Name": "prod/db"}))
answer("aws", "batch", BATCH, 200, j({"SecretValues": [
    {"ARN": "arn:aws:secretsmanager:eu-west-1:1:secret:prod/db-AbCdEf", "Name": "prod/db",
     "VersionId": VID, "SecretString": "s3cr3t-one"},
    {"ARN": ARN, "Name": "prod/api", "VersionId": "v2", "SecretBinary": "czNjcjN0"}],
    "Errors": [{"SecretId": "prod/tls", "ErrorCode": "ResourceNotFoundException",
                "Message": "not found"}]}))
answer("aws", "batch-dup", BATCH, 200, j({"SecretValues": [
    {"Name": "prod/db", "SecretBinary": "%%%"}, {"Name": "prod/db", "SecretString": "s3cr3t-2"}]}))
answer("aws", "batch-empty", BATCH, 200, j({"SecretValues": []}))
answer("aws", "error-json", ERROR_BODY, 400, j({"__type": "AccessDeniedException",
        "Message": "User is not authorized to perform: secretsmanager:BatchGetSecretValue"}))
answer("aws", "error-skew", ERROR_BODY, 403, j({"__type": "InvalidSignatureException",
        "message": "Signature expired: 20240101T000000Z is now earlier than 20240101T000500Z"}))
answer("aws", "error-xml", ERROR_BODY, 403, "<ErrorResponse><Error><Code>RequestExpired</Code>"
       "<Message>Request has expired.</Message></Error></ErrorResponse>")
answer("aws", "error-empty", ERROR_BODY, 500, "")

# ---- aws_creds (kinds as in fuzz_aws_creds.c) ----
CREDS_JSON, STS, IMDS_ROLE = range(3)
answer("aws_creds", "process", CREDS_JSON, 200, j({"Version": 1, "AccessKeyId": "PROCKEY",
        "SecretAccessKey": "s3cr3t-proc", "SessionToken": "s3cr3t-tok",
        "Expiration": "2026-11-29T10:15:00Z"}))
answer("aws_creds", "container", CREDS_JSON, 200, j({"AccessKeyId": "ASIA1",
        "SecretAccessKey": "s3cr3t-c", "Token": "s3cr3t-t", "Expiration": "2026-11-29T10:15:00.123Z",
        "RoleArn": "arn:aws:iam::1:role/r"}))
answer("aws_creds", "imds", CREDS_JSON, 200, j({"Code": "Success", "LastUpdated": "2024-01-01T00:00:00Z",
        "Type": "AWS-HMAC", "AccessKeyId": "ASIA2", "SecretAccessKey": "s3cr3t-i", "Token": "t",
        "Expiration": "not a time"}))
answer("aws_creds", "imds-fail", CREDS_JSON, 200, j({"Code": "AssumeRoleUnauthorizedAccess"}))
answer("aws_creds", "process-bad", CREDS_JSON, 200, j({"Version": 1}))
answer("aws_creds", "process-text", CREDS_JSON, 200, "s3cr3t plain text")
sts_ok = ("<AssumeRoleResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleResult>"
          "<Credentials><AccessKeyId>ASIAROLE</AccessKeyId><SecretAccessKey>s3cr3t-role</SecretAccessKey>"
          "<SessionToken>s3cr3t-session</SessionToken><Expiration>2026-11-29T10:15:00Z</Expiration>"
          "</Credentials><AssumedRoleUser><Arn>arn:aws:sts::1:assumed-role/r/s</Arn></AssumedRoleUser>"
          "</AssumeRoleResult></AssumeRoleResponse>")
answer("aws_creds", "sts", STS, 200, sts_ok)
answer("aws_creds", "sts-no-token", STS, 200, sts_ok.replace("SessionToken", "X"))
answer("aws_creds", "sts-denied", STS, 403, "<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied"
       "</Code><Message>User is not authorized to perform: sts:AssumeRole</Message></Error></ErrorResponse>")
answer("aws_creds", "sts-skew", STS, 400, "<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code>"
       "<Message>Signature expired</Message></Error></ErrorResponse>")
answer("aws_creds", "sts-empty", STS, 500, "")
answer("aws_creds", "role", IMDS_ROLE, 200, "my-instance-role\n")
answer("aws_creds", "role-crlf", IMDS_ROLE, 200, "r\r\nsecond\n")
answer("aws_creds", "role-empty", IMDS_ROLE, 200, "\n")
answer("aws_creds", "role-long", IMDS_ROLE, 200, "r" * 300)

# ---- azure (docs/internals/azure.md, tests/fakes/azure.py; kinds as in fuzz_azure.c) ----
CHALLENGE, ENTRA, IMDS, SECRET, KV_ERROR = range(5)
TEN = "72f988bf-86f1-41af-91ab-2d7cd011db47"
AVER = "4387e9f3d6e14c459867679a90fd0f79"
AID = "https://myvault.vault.azure.net/secrets/db-password/" + AVER
for i, h in enumerate([
        'Bearer authorization="https://login.windows.net/%s", resource="https://vault.azure.net"' % TEN,
        'Bearer authorization_uri="https://login.microsoftonline.com/%s/oauth2/authorize", '
        'scope="https://vault.azure.net/.default"' % TEN,
        'PoP nonce="n", Bearer authorization="https://l/t", resource="https://evil.example"',
        'Bearer realm="a \\"b\\"", claims="eyJ==", authorization="https://l/t", resource=https://vault.azure.cn',
        'Bearer authorization="https://l/t", resource="https://vault.azure.net", resource="x"',
        'Bearer authorization="unterminated', 'Negotiate abc==, Basic, Bearer', 'Bearer ,,,=',
        'Bearer authorization="https://l/t", resource="https://127.0.0.1"',
        'Bearer authorization="https://l/t", scope="api://x/.default"']):
    answer("azure", "challenge-%02d" % i, CHALLENGE, 403, h)   # the status byte is not read
answer("azure", "entra", ENTRA, 200, j({"token_type": "Bearer", "expires_in": 3599,
        "ext_expires_in": 3599, "access_token": "eyJ0eXAi.s3cr3t-tok.sig"}))
answer("azure", "entra-string", ENTRA, 200, j({"expires_in": "600", "access_token": "s3cr3t"}))
answer("azure", "entra-crlf", ENTRA, 200, j({"expires_in": 60, "access_token": "s3cr3t\r\nX: 1"}))
answer("azure", "entra-pop", ENTRA, 200, j({"expires_in": 60, "access_token": "s3cr3t",
        "token_type": "pop"}))
answer("azure", "entra-401", ENTRA, 403, j({"error": "invalid_client", "error_description":
        "AADSTS7000215: Invalid client secret provided.\r\nTrace ID: 0f\r\nCorrelation ID: 1a",
        "error_codes": [7000215], "timestamp": "2024-01-01 00:00:00Z", "trace_id": "0f",
        "correlation_id": "1a"}))
answer("azure", "entra-400", ENTRA, 400, j({"error": "unauthorized_client", "error_description":
        "AADSTS700016: Application with identifier 'x' was not found in the directory.",
        "error_codes": [700016]}))
answer("azure", "entra-html", ENTRA, 503, "<html>Service Unavailable</html>")
answer("azure", "imds", IMDS, 200, j({"access_token": "eyJ0.s3cr3t.x", "client_id": "c-1",
        "expires_in": "86399", "expires_on": "1700086399", "ext_expires_in": "86399",
        "not_before": "1699999700", "resource": "https://vault.azure.net", "token_type": "Bearer"}))
answer("azure", "imds-expires-on", IMDS, 200, j({"access_token": "s3cr3t", "expires_on": "1700003600"}))
answer("azure", "imds-bad-number", IMDS, 200, j({"access_token": "s3cr3t", "expires_in": "12a"}))
answer("azure", "imds-400", IMDS, 400, j({"error": "invalid_request",
        "error_description": "Identity not found"}))
answer("azure", "imds-410", IMDS, 500, "")
answer("azure", "secret", SECRET, 200, j({"value": "s3cr3t-db-passw0rd", "id": AID,
        "contentType": "text/plain", "tags": {"env": "dev"}, "attributes": {"enabled": True,
        "nbf": 1493938000, "exp": 1893456000, "created": 1493938410, "updated": 1493938410,
        "recoverableDays": 90, "recoveryLevel": "Recoverable+Purgeable"}}))
answer("azure", "secret-case", SECRET, 200, j({"value": "s3cr3t-x", "id": AID.upper()}), path=1)
answer("azure", "secret-pinned", SECRET, 200, j({"value": "s3cr3t-x", "id": AID}), path=2)
answer("azure", "secret-disabled-attr", SECRET, 200, j({"value": "s3cr3t-x", "id": AID,
        "attributes": {"enabled": False}}))
answer("azure", "secret-expired", SECRET, 200, j({"value": "s3cr3t-x", "id": AID,
        "attributes": {"exp": 1600000000}}))
answer("azure", "secret-nbf", SECRET, 200, j({"value": "s3cr3t-x", "id": AID,
        "attributes": {"nbf": 1800000000}}))
answer("azure", "secret-bad-id", SECRET, 200, j({"value": "s3cr3t-x", "id": "https://v/secrets/a/b"}))
answer("azure", "secret-no-value", SECRET, 200, j({"id": AID}))
answer("azure", "secret-404", SECRET, 404, j({"error": {"code": "SecretNotFound",
        "message": "A secret with (name/id) db-password was not found in this key vault."}}))
answer("azure", "secret-disabled", SECRET, 403, j({"error": {"code": "Forbidden",
        "message": "Operation get is not allowed on a disabled secret.",
        "innererror": {"code": "SecretDisabled"}}}))
answer("azure", "secret-policy", SECRET, 403, j({"error": {"code": "Forbidden",
        "message": "The user, group or application 'appid=a;oid=o' does not have secrets get "
        "permission on key vault 'v;location=eastus'.", "innerError": {"code": "ForbiddenByPolicy"}}}))
answer("azure", "secret-throttled", SECRET, 429, j({"error": {"code": "Throttled",
        "message": "Request was not processed because too many requests were received."}}))
answer("azure", "kv-error", KV_ERROR, 400, j({"error": {"code": "BadParameter",
        "message": "The specified version (7.9) is not recognized.\nline two\u001b[31m"}}))
answer("azure", "kv-error-401", KV_ERROR, 403, j({"error": {"code": "Unauthorized",
        "message": "AKV10000: Request is missing a Bearer or PoP token."}}))

# ---- gcp (docs/internals/gcp.md, tests/fakes/gcp_fake.py; kinds as in fuzz_gcp.c) ----
CRED, GOAUTH, GIAM, GSUBJECT, GACCESS = range(5)
PEM = ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQs3cr3t\n"
       "-----END PRIVATE KEY-----\n")
SA = {"type": "service_account", "project_id": "my-project", "private_key_id": "0123abcd",
      "private_key": PEM, "client_email": "app@my-project.iam.gserviceaccount.com",
      "client_id": "1234567890", "token_uri": "https://oauth2.googleapis.com/token"}
answer("gcp", "cred-sa", CRED, 200, j(SA))
answer("gcp", "cred-sa-http-token-uri", CRED, 200, j(dict(SA, token_uri="http://127.0.0.1/token")))
answer("gcp", "cred-sa-no-key", CRED, 200, j({k: v for k, v in SA.items() if k != "private_key"}))
answer("gcp", "cred-au", CRED, 200, j({"type": "authorized_user", "client_id": "c.apps.googleusercontent.com",
                                      "client_secret": "GOCSPX-s3cr3t", "refresh_token": "1//0s3cr3t",
                                      "account": "", "quota_project_id": "my-project"}))
EA = {"type": "external_account", "audience": "//iam.googleapis.com/projects/1/locations/global/"
      "workloadIdentityPools/pool-1/providers/provider-1",
      "subject_token_type": "urn:ietf:params:oauth:token-type:jwt",
      "token_url": "https://sts.googleapis.com/v1/token",
      "service_account_impersonation_url": "https://iamcredentials.googleapis.com/v1/projects/-/"
      "serviceAccounts/sa@p.iam.gserviceaccount.com:generateAccessToken",
      "credential_source": {"file": "/var/run/secrets/token", "format": {"type": "json",
                                                                         "subject_token_field_name": "t"}}}
answer("gcp", "cred-ea", CRED, 200, j(EA))
answer("gcp", "cred-ea-url", CRED, 200, j(dict(EA, credential_source={"url": "http://169.254.169.254/t"})))
answer("gcp", "cred-type-secret", CRED, 200, j({"type": "s3cr3t-pasted"}))
answer("gcp", "cred-not-json", CRED, 200, '{"private_key": "s3cr3t')
answer("gcp", "oauth", GOAUTH, 200, j({"access_token": "ya29.s3cr3t", "expires_in": 3599, "token_type": "Bearer"}))
answer("gcp", "oauth-string", GOAUTH, 200, j({"access_token": "ya29.s3cr3t", "expires_in": "3599"}))
answer("gcp", "oauth-crlf", GOAUTH, 200, j({"access_token": "s3cr3t\r\nX: 1", "expires_in": 60}))
answer("gcp", "oauth-invalid-grant", GOAUTH, 400, j({"error": "invalid_grant",
                                                     "error_description": "Invalid JWT Signature."}))
answer("gcp", "oauth-html", GOAUTH, 403, "<html>Missing Metadata-Flavor:Google header.</html>")
answer("gcp", "iam", GIAM, 200, j({"accessToken": "ya29.s3cr3t", "expireTime": "2023-11-14T23:13:20Z"}))
answer("gcp", "iam-frac", GIAM, 200, j({"accessToken": "ya29.s3cr3t", "expireTime": "2023-11-15T00:13:20.5+01:00"}))
answer("gcp", "iam-denied", GIAM, 403, j({"error": {"code": 403, "status": "PERMISSION_DENIED", "message":
                                          "Permission 'iam.serviceAccounts.getAccessToken' denied"}}))
answer("gcp", "subject-text", GSUBJECT, 200, "eyJhbGciOiJSUzI1NiJ9.s3cr3t.sig\n")
answer("gcp", "subject-json", GSUBJECT, 200, j({"access_token": "s3cr3t-subject"}), path=4)
B64 = "czNjcjN0LWRiLXBhc3N3MHJk"   # s3cr3t-db-passw0rd
answer("gcp", "access", GACCESS, 200, j({"name": "projects/123456/secrets/db-password/versions/3",
                                         "payload": {"data": B64, "dataCrc32c": "2221743797"}}))
answer("gcp", "access-pinned", GACCESS, 200, j({"name": "projects/1/secrets/db-password/versions/3",
                                                "payload": {"data": B64}}), path=1)
answer("gcp", "access-regional", GACCESS, 200, j({"name": "projects/1/locations/us-east1/secrets/db-password/"
                                                  "versions/9", "payload": {}}), path=2)
answer("gcp", "access-bad-crc", GACCESS, 200, j({"name": "projects/1/secrets/db-password/versions/3",
                                                 "payload": {"data": B64, "dataCrc32c": "1"}}))
answer("gcp", "access-404", GACCESS, 404, j({"error": {"code": 404, "status": "NOT_FOUND", "message":
                                             "Secret [projects/1/secrets/db-password] not found or has no versions."}}))
answer("gcp", "access-disabled", GACCESS, 400, j({"error": {"code": 400, "status": "FAILED_PRECONDITION",
                                                  "message": "Secret Version [projects/1/secrets/db-password/"
                                                  "versions/3] is in DISABLED state."}}))
answer("gcp", "access-html-404", GACCESS, 404, "<!DOCTYPE html><title>Error 404 (Not Found)!!1</title>")
answer("gcp", "access-503", GACCESS, 503, j({"error": {"code": 503, "status": "UNAVAILABLE", "message": "x"}}))
for i, r in enumerate(["db-password", "db-password?version=3#user", "projects/my-project/secrets/s/versions/latest",
                        "projects/123/locations/us-east1/secrets/a_b-C?version=12#/x/0", "projects/P/secrets/s",
                        "a/b", "projects/my-project/secrets/s/versions/2?version=2"]):
    put("gcp", "name-%02d" % i, bytes([5, i & 3]) + r.encode())

# ---- policy (tests/unit/test_policy_rules.c, test_policy_glob.c; byte 0
# as in fuzz_policy.c: 0 policy JSON, 2 the same checking form only,
# 1 "PATTERN\nSTRING") ----
issue15 = {
    "default": "deny",
    "rules": [
        {"secrets": ["db/*", "api_key"], "allow": {"uids": [1000], "exe": ["/bin/sh"]}},
        {"secrets": ["**"], "allow": {"containers": ["docker:*", "libpod:*"], "gids": [2000]}},
        {"secrets": ["admin/**"], "deny": {"cgroups": ["/system.slice/ssh*.service"]}},
    ],
    "audit": {"sink": "stderr", "repeat_after": "1m"},
}
put("policy", "issue15.json", b"\x00" + j(issue15).encode())
put("policy", "issue15-form.json", b"\x02" + j(issue15).encode())
put("policy", "pid0.json", b"\x00" + j({"default": "allow", "rules": [
    {"secrets": ["a"], "deny": {"uids": [1000], "exe": ["/bin/sh"]}},
    {"secrets": ["a", "b/*"], "allow": {"uids": ["root", 1001], "gids": [1000, 2000]}},
    {"secrets": ["c"], "deny": {"pids_ns": "same"}},
    {"secrets": ["c/**"], "allow": {"containers": ["crio:0123456789ab", "cri-containerd:*"]}},
]}).encode())
put("policy", "missing-ok.json", b"\x00" + j({"missing_ok": True, "rules": [
    {"secrets": ["x"], "missing_ok": True, "allow": {"exe": ["/nonexistent/app", "/bin/sh"]}},
], "audit": {"sink": "file:/var/log/rs.log", "repeat_after": 90}}).encode())
put("policy", "bad-both.json", b"\x00" + j({"rules": [
    {"secrets": ["a"], "allow": {"uids": [1]}, "deny": {"uids": [2]}}]}).encode())
put("policy", "bad-empty.json", b"\x00" + j({"rules": [{"secrets": ["a"], "allow": {}}]}).encode())
for name, pat, s in [("star", "db/*", "db/password"), ("globstar", "a/**/b", "a/x/y/b"),
                     ("set", "[!a-c]x?[]]", "dxy]"), ("escape", "\\*\\?", "*?"),
                     ("cgroup", "/kubepods.slice/**/cri-containerd-*.scope",
                      "/kubepods.slice/k.slice/p.slice/cri-containerd-ab.scope"),
                     ("slow", "*a" * 20 + "*b", "a" * 200), ("bad", "a**", "a")]:
    put("policy", "glob-" + name, b"\x01" + (pat + "\n" + s).encode())
# Byte 0 = 5: an audit line; byte 1 its buffer's size / 40; then secret, exe
# path, cgroup and error, "\n"-separated (bytes that are not UTF-8 too).
put("policy", "audit-line", b"\x05\xc8" + b"db/password\n/usr/bin/app\n/docker/" + b"a" * 64
    + b"\nInput/output error")
put("policy", "audit-bytes", b"\x05\x10" + b"s\xff\xfe\"\\\n/opt/\xc0\xaf\x01\n/c\xed\xa0\x80\n")
