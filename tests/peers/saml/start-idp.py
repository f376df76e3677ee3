#!/usr/bin/env python3
"""Start a real SAML 2.0 IdP (Debian's SimpleSAMLphp 1.19, served by `php -S`) on 127.0.0.1 for the tests.

usage: python3 start-idp.py --dir WORKDIR --port P --sp-metadata FILE
           [--sign-response] [--no-sign-assertion] [--encrypt-assertion]
           [--sign-algo rsa-sha256|rsa-sha1] [--require-signed-authnrequests]

Writes a complete SimpleSAMLphp configuration under WORKDIR (config/, metadata/, cert/, log/, data/, tmp/,
sessions/, docroot/), with a fresh RSA-2048 signing key and self-signed certificate, an `exampleauth:UserPass`
source with the users alice/alicepw and bob/bobpw, and the SP(s) of the SAML metadata XML in FILE. Then it
runs `php -S 127.0.0.1:P` and, once the IdP metadata URL answers, prints exactly one line to stdout:

    READY <idp-entity-id> <idp-metadata-url>

(both are http://127.0.0.1:P/simplesaml/saml2/idp/metadata.php). Everything else goes to stderr. It runs until
it gets SIGTERM/SIGINT (which also stops php; php also dies with this process on Linux). --port 0 picks a free
port. Exit status 1 (and no READY line) when the IdP cannot be set up or does not come up.

Flag -> SimpleSAMLphp option (set on the hosted IdP *and* on every SP entry, because SimpleSAMLphp lets SP
metadata win, and the SP's XML metadata would otherwise decide via WantAssertionsSigned/AuthnRequestsSigned):
    (default)                      saml20.sign.assertion=true,  saml20.sign.response=false
    --sign-response                saml20.sign.response=true
    --no-sign-assertion            saml20.sign.assertion=false
    --encrypt-assertion            assertion.encryption=true (SP's use="encryption" or use-less KeyDescriptor;
                                   RSA-OAEP-MGF1P key transport, AES-128-CBC content)
    --sign-algo rsa-sha1|rsa-sha256 signature.algorithm (default rsa-sha256)
    --require-signed-authnrequests validate.authnrequest=true + redirect.validate=true (else both false)
NameID: format urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified, value = the user's `uid` attribute
(authproc saml:AttributeNameID; NameIDFormat forced on the SP entry so the SP metadata or the AuthnRequest's
NameIDPolicy cannot switch it to a random transient one). Attributes use NameFormat
urn:oasis:names:tc:SAML:2.0:attrname-format:basic.
"""

import argparse
import ctypes
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

SSP_ROOT = "/usr/share/simplesamlphp"
SSP_WWW = SSP_ROOT + "/www"

NAMEID_UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
NAMEFORMAT_BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
SIGN_ALGOS = {
    "rsa-sha256": "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "rsa-sha1": "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
}

USERS = {
    "alice:alicepw": {
        "uid": ["alice"],
        "mail": ["alice@example.com"],
        "displayName": ["Alice Liddell"],
        "eduPersonAffiliation": ["member", "staff"],
        "groups": ["staff", "sts-admins"],
    },
    "bob:bobpw": {
        "uid": ["bob"],
        "mail": ["bob@example.com"],
        "groups": ["contractors"],
    },
}


def log(msg):
    print(f"start-idp: {msg}", file=sys.stderr, flush=True)


def die(msg):
    log(msg)
    sys.exit(1)


class Raw(str):
    """PHP source inserted as it is (e.g. a constant)."""


def php(value):
    """A Python value (str/bool/int/None/list/dict, or Raw) as a PHP literal."""
    if isinstance(value, Raw):
        return str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(php(v) for v in value) + "]"
    if isinstance(value, dict):
        return "[\n" + "".join(f"    {php(k)} => {php(v)},\n" for k, v in value.items()) + "]"
    raise TypeError(f"no PHP literal for {value!r}")


def write(path, text, mode=0o644):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    os.chmod(path, mode)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def die_with_parent():
    """preexec_fn: php gets SIGTERM when this process dies, even by SIGKILL (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # PR_SET_PDEATHSIG = 1
    except Exception:  # not Linux: SIGTERM to us still stops php
        pass


def main():
    ap = argparse.ArgumentParser(description="Run SimpleSAMLphp as a SAML 2.0 IdP test peer on 127.0.0.1.")
    ap.add_argument("--dir", required=True, help="work directory (created; its IdP files are overwritten)")
    ap.add_argument("--port", required=True, type=int, help="TCP port on 127.0.0.1 (0: pick a free one)")
    ap.add_argument("--sp-metadata", required=True, help="SAML metadata XML of the SP(s) to trust")
    ap.add_argument("--sign-response", action="store_true", help="also sign the whole <samlp:Response>")
    ap.add_argument("--no-sign-assertion", action="store_true", help="do not sign the <saml:Assertion>")
    ap.add_argument("--encrypt-assertion", action="store_true", help="send an <EncryptedAssertion>")
    ap.add_argument("--sign-algo", choices=sorted(SIGN_ALGOS), default="rsa-sha256")
    ap.add_argument("--require-signed-authnrequests", action="store_true",
                    help="reject AuthnRequests without a valid signature by a key in the SP metadata")
    ap.add_argument("--startup-timeout", type=float, default=30.0, help="seconds to wait for php (default 30)")
    ap.add_argument("--workers", type=int, default=1,
                    help="PHP_CLI_SERVER_WORKERS (default 1: one php process, requests served one at a time)")
    args = ap.parse_args()

    if not os.path.isfile(os.path.join(SSP_WWW, "index.php")):
        die(f"{SSP_WWW} missing: run scripts/install-deps --peers (Debian package simplesamlphp)")
    php_bin = shutil.which("php")
    if not php_bin:
        die("php not found: run scripts/install-deps --peers (php-cli)")
    openssl = shutil.which("openssl")
    if not openssl:
        die("openssl not found")
    if not os.path.isfile(args.sp_metadata):
        die(f"SP metadata file not found: {args.sp_metadata}")

    port = args.port or free_port()
    work = os.path.abspath(args.dir)
    base = f"http://127.0.0.1:{port}/simplesaml/"
    metadata_url = base + "saml2/idp/metadata.php"
    entity_id = metadata_url

    d = {name: os.path.join(work, name)
         for name in ("config", "metadata", "cert", "log", "data", "tmp", "sessions", "docroot")}
    for p in d.values():
        os.makedirs(p, exist_ok=True)
    os.chmod(d["cert"], 0o700)

    # --- signing key + self-signed certificate (fresh on every start) ---
    key_path = os.path.join(d["cert"], "idp.key")
    crt_path = os.path.join(d["cert"], "idp.crt")
    for p in (key_path, crt_path):
        if os.path.exists(p):
            os.unlink(p)
    r = subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
                        "-subj", f"/CN=SimpleSAMLphp test IdP 127.0.0.1:{port}",
                        "-keyout", key_path, "-out", crt_path],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        die("openssl failed:\n" + r.stdout)
    os.chmod(key_path, 0o600)

    # --- config/config.php ---
    config = {
        "baseurlpath": base,
        "certdir": d["cert"] + "/",
        "loggingdir": d["log"] + "/",
        "datadir": d["data"] + "/",
        "tempdir": d["tmp"],
        "metadatadir": d["metadata"] + "/",
        "attributenamemapdir": SSP_ROOT + "/attributemap/",
        "technicalcontact_name": "STS test suite",
        "technicalcontact_email": "sts-tests@example.invalid",
        "timezone": "UTC",
        "secretsalt": secrets.token_hex(32),
        "auth.adminpassword": secrets.token_urlsafe(24),
        "admin.protectindexpage": True,
        "admin.protectmetadata": False,
        "admin.checkforupdates": False,
        "trusted.url.domains": [f"127.0.0.1:{port}", "127.0.0.1"],
        "showerrors": True,
        "errorreporting": False,
        "production": True,  # False only adds a "pre-production system" banner to every page
        "logging.level": Raw("SimpleSAML\\Logger::INFO"),
        "logging.handler": "file",
        "logging.logfile": "simplesamlphp.log",
        "logging.processname": "simplesamlphp",
        "statistics.out": [],
        "enable.saml20-idp": True,
        "enable.shib13-idp": False,
        "enable.adfs-idp": False,
        "module.enable": {"exampleauth": True, "core": True, "saml": True, "admin": True},
        "session.duration": 8 * 3600,
        "session.cookie.secure": False,
        "session.cookie.samesite": None,
        # Cookies ignore ports: per-port names and the /simplesaml/ path keep several IdPs and the STS, all on
        # 127.0.0.1, apart in one browser.
        "session.cookie.path": "/simplesaml/",
        "session.cookie.name": f"SimpleSAMLSessionID{port}",
        "session.authtoken.cookiename": f"SimpleSAMLAuthToken{port}",
        "session.phpsession.cookiename": f"SimpleSAML{port}",
        "language.cookie.path": "/simplesaml/",
        "language.cookie.name": f"SimpleSAMLLanguage{port}",
        "session.phpsession.savepath": d["sessions"],
        "session.phpsession.httponly": True,
        "language.cookie.secure": False,
        "language.cookie.samesite": None,
        "store.type": "phpsession",
        "metadata.sources": [{"type": "flatfile", "directory": d["metadata"]}],
        "metadata.sign.enable": False,
        "authproc.idp": {},
        "authproc.sp": {},
    }
    body = "".join(f"$config[{php(k)}] = {php(v)};\n" for k, v in config.items())
    write(os.path.join(d["config"], "config.php"),
          "<?php\n// Written by tests/peers/saml/start-idp.py; regenerated on every start.\n$config = [];\n" + body)

    # --- config/authsources.php ---
    auth = "<?php\n$config = [\n"
    auth += "    'admin' => ['core:AdminPassword'],\n"
    auth += "    'example-userpass' => [\n        'exampleauth:UserPass',\n"
    for userpass, attrs in USERS.items():
        auth += f"        {php(userpass)} => {php(attrs)},\n"
    auth += "    ],\n];\n"
    write(os.path.join(d["config"], "authsources.php"), auth)

    # --- metadata/saml20-idp-hosted.php ---
    flags = {
        "saml20.sign.assertion": not args.no_sign_assertion,
        "saml20.sign.response": bool(args.sign_response),
        "assertion.encryption": bool(args.encrypt_assertion),
        "signature.algorithm": SIGN_ALGOS[args.sign_algo],
        "validate.authnrequest": bool(args.require_signed_authnrequests),
        "redirect.validate": bool(args.require_signed_authnrequests),
    }
    idp = {
        "host": "__DEFAULT__",
        "privatekey": "idp.key",
        "certificate": "idp.crt",
        "auth": "example-userpass",
        "userid.attribute": "uid",
        "NameIDFormat": NAMEID_UNSPECIFIED,
        "simplesaml.nameidattribute": "uid",
        "attributes.NameFormat": NAMEFORMAT_BASIC,
        "assertion.lifetime": 300,
        "SingleSignOnServiceBinding": ["urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect",
                                       "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"],
        # NameID = uid, format unspecified (state['saml:NameID'][unspecified], used by the SSO service)
        "authproc": {10: {"class": "saml:AttributeNameID", "Format": NAMEID_UNSPECIFIED, "attribute": "uid"}},
        **flags,
    }
    hosted = "<?php\n$metadata[" + php(entity_id) + "] = " + php(idp) + ";\n"
    write(os.path.join(d["metadata"], "saml20-idp-hosted.php"), hosted)

    env = dict(os.environ, SIMPLESAMLPHP_CONFIG_DIR=d["config"])

    # --- metadata/saml20-sp-remote.php: SimpleSAMLphp's own parser on the SP's XML, plus our overrides ---
    sp_overrides = dict(flags, **{
        "NameIDFormat": NAMEID_UNSPECIFIED,
        "simplesaml.nameidattribute": "uid",
        "attributes.NameFormat": NAMEFORMAT_BASIC,
    })
    convert = os.path.join(d["tmp"], "sp-metadata-to-php.php")
    write(convert, r"""<?php
require '""" + SSP_ROOT + r"""/lib/_autoload.php';
$overrides = json_decode($argv[2], true);
$entities = \SimpleSAML\Metadata\SAMLParser::parseDescriptorsFile($argv[1]);
$out = "<?php\n// Written by tests/peers/saml/start-idp.py from " . str_replace("\n", ' ', $argv[1]) . "\n";
$n = 0;
foreach ($entities as $entityId => $entity) {
    $md = $entity->getMetadata20SP();
    if ($md === null) {
        continue;
    }
    unset($md['entityDescriptor'], $md['expire']);
    $md = array_merge($md, $overrides);
    $out .= '$metadata[' . var_export($entityId, true) . '] = ' . var_export($md, true) . ";\n";
    fwrite(STDERR, "SP " . $entityId . ": " . count($md['AssertionConsumerService'] ?? []) . " ACS, "
        . count($md['keys'] ?? []) . " keys\n");
    $n++;
}
if ($n === 0) {
    fwrite(STDERR, "no SPSSODescriptor in " . $argv[1] . "\n");
    exit(1);
}
file_put_contents($argv[3], $out);
""")
    r = subprocess.run([php_bin, convert, os.path.abspath(args.sp_metadata), json.dumps(sp_overrides),
                        os.path.join(d["metadata"], "saml20-sp-remote.php")],
                       env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in r.stdout.splitlines():
        log(line)
    if r.returncode != 0:
        die(f"could not read the SP metadata {args.sp_metadata}")
    if args.encrypt_assertion:
        sp_php = open(os.path.join(d["metadata"], "saml20-sp-remote.php"), encoding="utf-8").read()
        if "'encryption' => true" not in sp_php:
            die("--encrypt-assertion: the SP metadata has no encryption key (KeyDescriptor use=\"encryption\")")

    # --- docroot/simplesaml -> SimpleSAMLphp's www ---
    link = os.path.join(d["docroot"], "simplesaml")
    if os.path.islink(link) or os.path.exists(link):
        os.unlink(link)
    os.symlink(SSP_WWW, link)

    # --- run php -S ---
    env.pop("PHP_CLI_SERVER_WORKERS", None)
    if args.workers > 1:  # forked workers: stopped with php's process group (not on SIGKILL of this script)
        env["PHP_CLI_SERVER_WORKERS"] = str(args.workers)
    cmd = [php_bin,
           "-d", "display_errors=0", "-d", "log_errors=1", "-d", "error_reporting=E_ALL & ~E_DEPRECATED",
           "-d", "expose_php=0",
           "-S", f"127.0.0.1:{port}", "-t", d["docroot"]]
    log(f"workdir {work}; flags {json.dumps(flags)}")
    log("running " + " ".join(cmd))
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, cwd=work, stdin=subprocess.DEVNULL, stdout=sys.stderr,
                            stderr=sys.stderr, preexec_fn=die_with_parent, start_new_session=True)
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    try:
        cert_b64 = "".join(line.strip() for line in open(crt_path, encoding="ascii")
                           if not line.startswith("-----"))
        sys.exit(serve(proc, started, args.startup_timeout, entity_id, metadata_url, base, cert_b64))
    except Stopped as e:
        log(f"got signal {e.args[0]}, stopping php")
        sys.exit(0)
    finally:
        shutdown(proc)


class Stopped(Exception):
    pass


def on_signal(signum, _frame):
    raise Stopped(signum)


def serve(proc, started, timeout, entity_id, metadata_url, base, cert_b64):
    """Wait until the IdP answers (with our certificate: not another server on the port), print READY, then
    wait for php; returns the exit status."""
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via an http_proxy
    last = "no answer"
    while True:
        if proc.poll() is not None:
            log(f"php exited with status {proc.returncode} before the IdP came up")
            return 1
        try:
            with direct.open(metadata_url, timeout=5) as resp:
                text = resp.read().decode("utf-8", "replace")
                if resp.status == 200 and entity_id in text and cert_b64 in "".join(text.split()):
                    break
                last = f"HTTP {resp.status}: {text[:300]!r}"
        except urllib.error.HTTPError as e:
            last = f"HTTP {e.code}: {e.read()[:300]!r}"
        except (urllib.error.URLError, OSError) as e:
            last = str(e)
        if time.monotonic() - started > timeout:
            log(f"IdP did not come up within {timeout}s: {last}")
            return 1
        time.sleep(0.1)
    log(f"up after {time.monotonic() - started:.2f}s; "
        f"SSO (HTTP-Redirect and HTTP-POST) at {base}saml2/idp/SSOService.php")
    print(f"READY {entity_id} {metadata_url}", flush=True)
    # poll, not wait(): a signal handler must never interrupt Popen.wait() (it holds a lock shutdown() needs)
    while proc.poll() is None:
        time.sleep(0.25)
    log(f"php exited with status {proc.returncode}")
    return 1


def shutdown(proc):
    """Stop php's process group: the server and, with --workers > 1, its forked workers."""
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(5)
            break
        except subprocess.TimeoutExpired:
            continue
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # forked workers still left after the server exited
    except (ProcessLookupError, PermissionError):
        pass
    if proc.poll() is None:
        proc.wait()

if __name__ == "__main__":
    main()
