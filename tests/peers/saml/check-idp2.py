#!/usr/bin/env python3
"""Self-check of the second SAML IdP (tests/peers/node/saml-idp2.mjs, npm samlify) without the STS.

usage: python3 check-idp2.py [--only NAME ...] [--keep]

For every mode (flag set) below: makes an SP with openssl (a signing and a separate encryption key pair), writes
its metadata (KeyDescriptor use="signing" and use="encryption", an HTTP-POST ACS that nothing listens on), starts
the IdP with those flags, sends it a hand-made HTTP-Redirect AuthnRequest (deflate + base64) through
tests/peers/saml/login.py as alice, and checks the SAMLResponse login.py got:
  - with the xmlsec1 CLI: every signature the mode promises verifies with the certificate from the IdP's metadata
    (and only with it: the KeyInfo certificates in the message are not used), none that it does not promise is
    there; a tampered copy fails; the EncryptedAssertion decrypts with the SP's *encryption* key
    (`xmlsec1 --decrypt`; the beside layout needs `--enabled-retrieval-uris same-doc` and the EncryptedKey's
    Id registered as an ID, so that xmlsec1 follows the ds:RetrievalMethod);
  - xmlsec1 1.2 does not know http://www.w3.org/2009/xmlenc11#rsa-oaep (1.3 does): in that mode the content
    key is unwrapped with `openssl pkeyutl` using the parameters the markup states (OAEP, SHA-1, MGF1-SHA-1;
    SHA-256 OAEP must fail), and xmlsec1 decrypts a copy relabelled xmlenc#rsa-oaep-mgf1p (the same OAEP);
  - schema validity (SAML 2.0 protocol/assertion, xmldsig, xenc through samlify's xmllint validator) of the
    Response and of the decrypted Assertion; the validator has no XML Encryption 1.1 schema, so an xenc11:MGF
    is left out of that one check;
  - the structure: key inside EncryptedData/ds:KeyInfo with its own ds:KeyInfo/ds:X509Data, or beside with a
    ds:RetrievalMethod (Type xmlenc#EncryptedKey, URI = #<EncryptedKey Id>); the algorithm URIs (content
    encryption, key transport, RSA-SHA256, SHA-256 digests, exclusive c14n); the prefixes;
  - the SAML content (decrypted where needed): Destination, InResponseTo, Issuer, NameID alice (format
    unspecified), SubjectConfirmationData Recipient/InResponseTo/NotOnOrAfter, Conditions window and Audience,
    AuthnStatement, basic-format attributes with multi-valued groups.
Then a few protocol checks: bob's attributes, a wrong password (login.py: login failed), an AuthnRequest for
another ACS (refused), IdP-initiated login (no InResponseTo), single sign-on with login.py's cookie jar.
Prints one line per mode, `PASS`/`FAIL`, and a summary; exit status 0 only when everything passed.
"""

import argparse
import base64
import datetime
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import zlib
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", "..", ".."))
NODE_DIR = os.path.join(ROOT, "tests", "peers", "node")
LOGIN_PY = os.path.join(HERE, "login.py")

NS = {
    "md": "urn:oasis:names:tc:SAML:2.0:metadata",
    "saml": "urn:oasis:names:tc:SAML:2.0:assertion",
    "samlp": "urn:oasis:names:tc:SAML:2.0:protocol",
    "ds": "http://www.w3.org/2000/09/xmldsig#",
    "xenc": "http://www.w3.org/2001/04/xmlenc#",
    "xenc11": "http://www.w3.org/2009/xmlenc11#",
}
ENC_ALGS = {
    "aes256-gcm": "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "aes128-gcm": "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "aes128-cbc": "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "aes256-cbc": "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
}
KEY_TRANSPORTS = {
    "rsa-oaep-mgf1p": "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
    "rsa-oaep": "http://www.w3.org/2009/xmlenc11#rsa-oaep",
}
RSA_SHA256 = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
SHA256 = "http://www.w3.org/2001/04/xmlenc#sha256"
EXC_C14N = "http://www.w3.org/2001/10/xml-exc-c14n#"
ENVELOPED = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
BASIC = "urn:oasis:names:tc:SAML:2.0:attrname-format:basic"
RESPONSE_ID = "urn:oasis:names:tc:SAML:2.0:protocol:Response"
ASSERTION_ID = "urn:oasis:names:tc:SAML:2.0:assertion:Assertion"

# name -> flags
MODES = [
    ("assertion-signed (default)", []),
    ("response+assertion signed", ["--sign-response"]),
    ("response signed only", ["--sign-response", "--no-sign-assertion"]),
    ("unsigned", ["--no-sign-assertion"]),
    ("saml2 prefixes, both signed", ["--prefixes", "saml2", "--sign-response"]),
    ("saml2 prefixes, assertion signed", ["--prefixes", "saml2"]),
    ("enc aes256-gcm mgf1p inside, response signed",
     ["--encrypt-assertion", "--sign-response"]),
    ("enc aes128-gcm", ["--encrypt-assertion", "--sign-response", "--enc-alg", "aes128-gcm"]),
    ("enc aes128-cbc", ["--encrypt-assertion", "--sign-response", "--enc-alg", "aes128-cbc"]),
    ("enc aes256-cbc", ["--encrypt-assertion", "--sign-response", "--enc-alg", "aes256-cbc"]),
    ("enc rsa-oaep (xmlenc11)", ["--encrypt-assertion", "--sign-response", "--key-transport", "rsa-oaep"]),
    ("enc key beside + RetrievalMethod", ["--encrypt-assertion", "--sign-response", "--key-layout", "beside"]),
    ("enc beside, aes128-cbc", ["--encrypt-assertion", "--sign-response", "--key-layout", "beside",
                                "--enc-alg", "aes128-cbc"]),
    ("enc, response unsigned (assertion signed inside)", ["--encrypt-assertion"]),
    ("enc, response signed, assertion unsigned", ["--encrypt-assertion", "--sign-response", "--no-sign-assertion"]),
    ("saml2 prefixes, enc inside", ["--prefixes", "saml2", "--encrypt-assertion", "--sign-response"]),
    ("saml2 prefixes, enc beside rsa-oaep aes128-cbc",
     ["--prefixes", "saml2", "--encrypt-assertion", "--sign-response", "--key-layout", "beside",
      "--key-transport", "rsa-oaep", "--enc-alg", "aes128-cbc"]),
]


class CheckFailed(Exception):
    pass


def need(cond, msg):
    if not cond:
        raise CheckFailed(msg)


def run(cmd, **kw):
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def openssl_pair(d, name, cn):
    key, crt = os.path.join(d, name + ".key"), os.path.join(d, name + ".crt")
    r = run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "2",
             "-subj", "/CN=" + cn, "-keyout", key, "-out", crt])
    need(r.returncode == 0, "openssl: " + r.stderr)
    return key, crt


def cert_b64(crt):
    return "".join(line.strip() for line in open(crt) if not line.startswith("-----"))


def sp_metadata(entity_id, acs, sign_crt, enc_crt):
    return f"""<md:EntityDescriptor xmlns:md="{NS['md']}" xmlns:ds="{NS['ds']}" entityID="{entity_id}">
  <md:SPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol" AuthnRequestsSigned="false" WantAssertionsSigned="true">
    <md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_b64(sign_crt)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>
    <md:KeyDescriptor use="encryption"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{cert_b64(enc_crt)}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>
      <md:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes256-gcm"/></md:KeyDescriptor>
    <md:AssertionConsumerService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST" Location="{acs}" index="0"/>
  </md:SPSSODescriptor>
</md:EntityDescriptor>
"""


class Idp:
    def __init__(self, node, sp_md_file, flags):
        self.proc = subprocess.Popen([node, "saml-idp2.mjs", "--port", "0", "--sp-metadata", sp_md_file, *flags],
                                     cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=self._stderr_file(), text=True)
        line = self.proc.stdout.readline().strip()
        parts = line.split()
        if len(parts) != 3 or parts[0] != "READY":
            self.stop()
            raise CheckFailed(f"no READY line from saml-idp2.mjs (got {line!r}); stderr:\n{self.stderr()}")
        self.entity_id, self.metadata_url = parts[1], parts[2]
        self.base = self.metadata_url.rsplit("/", 1)[0]

    def _stderr_file(self):
        self._err = tempfile.TemporaryFile(mode="w+")
        return self._err

    def stderr(self):
        self._err.seek(0)
        return self._err.read()[-4000:]

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def fetch(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as r:
        return r.status, r.headers.get("Content-Type"), r.read().decode()


def authn_request_url(idp, sp_entity, acs, relay_state, request_id):
    xml = (f'<samlp:AuthnRequest xmlns:samlp="{NS["samlp"]}" xmlns:saml="{NS["saml"]}" ID="{request_id}" '
           f'Version="2.0" IssueInstant="{datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}" '
           f'Destination="{idp.base}/sso" AssertionConsumerServiceURL="{acs}" '
           f'ProtocolBinding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST">'
           f'<saml:Issuer>{sp_entity}</saml:Issuer>'
           f'<samlp:NameIDPolicy Format="{UNSPECIFIED}" AllowCreate="true"/></samlp:AuthnRequest>')
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    deflated = c.compress(xml.encode()) + c.flush()
    q = urllib.parse.urlencode({"SAMLRequest": base64.b64encode(deflated).decode(), "RelayState": relay_state})
    return f"{idp.base}/sso?{q}"


def login(url, user, password, cookies=None):
    cmd = [sys.executable, LOGIN_PY, "--authn-url", url, "--user", user, "--password", password]
    if cookies:
        cmd += ["--cookies", cookies]
    r = run(cmd)
    try:
        return json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise CheckFailed(f"login.py printed no verdict: {r.stdout} {r.stderr}")


def xmlsec_verify(work, xml, idp_crt, node_xpath, label):
    """xmlsec1 --verify of the signature at node_xpath with the IdP certificate as the only key: KeyInfo's X509
    data is switched off (--enabled-key-data rsa), so the certificate in the message is not what is trusted."""
    f = os.path.join(work, f"verify-{label}.xml")
    open(f, "w").write(xml)
    r = run(["xmlsec1", "--verify", "--enabled-key-data", "rsa", "--pubkey-cert-pem", idp_crt,
             "--id-attr:ID", RESPONSE_ID, "--id-attr:ID", ASSERTION_ID,
             "--node-xpath", node_xpath, f])
    return r.returncode == 0 and "OK" in (r.stdout + r.stderr), (r.stdout + r.stderr).strip()


def xmlsec_decrypt(work, xml, enc_key, label):
    f = os.path.join(work, f"decrypt-{label}.xml")
    out = os.path.join(work, f"decrypted-{label}.xml")
    open(f, "w").write(xml)
    r = run(["xmlsec1", "--decrypt", "--privkey-pem", enc_key,
             "--id-attr:Id", f"{NS['xenc']}:EncryptedKey",
             "--output", out, f])
    if r.returncode != 0:
        return None, (r.stdout + r.stderr).strip()
    return open(out).read(), ""


SCHEMA_JS = """
const v = require('@authenio/samlify-node-xmllint');
let x = '';
process.stdin.on('data', (c) => { x += c; });
process.stdin.on('end', () => v.validate(x).then(() => process.exit(0),
  (e) => { console.error(String(e).slice(0, 800)); process.exit(1); }));
"""


def schema_valid(node, xml):
    """The SAML 2.0 protocol/assertion schemas (with xmldsig and xenc) through xmllint, as samlify checks."""
    r = subprocess.run([node, "-e", SCHEMA_JS], input=xml, cwd=NODE_DIR, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, text=True)
    return r.returncode == 0, r.stderr.strip()


def xp(local, parent="/*"):
    return f"{parent}/*[local-name()='{local}']"


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00"))


def check_signature_shape(sig, where):
    si = sig.find("ds:SignedInfo", NS)
    need(si is not None, f"{where}: no SignedInfo")
    need(si.find("ds:CanonicalizationMethod", NS).get("Algorithm") == EXC_C14N, f"{where}: c14n not exclusive")
    need(si.find("ds:SignatureMethod", NS).get("Algorithm") == RSA_SHA256, f"{where}: not RSA-SHA256")
    refs = si.findall("ds:Reference", NS)
    need(len(refs) == 1, f"{where}: {len(refs)} References")
    need(refs[0].find("ds:DigestMethod", NS).get("Algorithm") == SHA256, f"{where}: digest not SHA-256")
    transforms = [t.get("Algorithm") for t in refs[0].findall("ds:Transforms/ds:Transform", NS)]
    need(transforms == [ENVELOPED, EXC_C14N], f"{where}: transforms {transforms}")
    return refs[0].get("URI")


def check_assertion(a, ctx):
    """SAML content of the (plaintext) assertion."""
    need(a.find("saml:Issuer", NS).text == ctx["idp"], "assertion Issuer")
    nameid = a.find("saml:Subject/saml:NameID", NS)
    need(nameid is not None and nameid.text == ctx["user"] and nameid.get("Format") == UNSPECIFIED,
         f"NameID {None if nameid is None else (nameid.text, nameid.get('Format'))}")
    scd = a.find("saml:Subject/saml:SubjectConfirmation/saml:SubjectConfirmationData", NS)
    need(scd is not None and scd.get("Recipient") == ctx["acs"], "SubjectConfirmationData Recipient")
    need(scd.get("InResponseTo") == ctx["request_id"], "SubjectConfirmationData InResponseTo")
    now = datetime.datetime.now(datetime.timezone.utc)
    need(parse_time(scd.get("NotOnOrAfter")) > now, "SubjectConfirmationData expired")
    cond = a.find("saml:Conditions", NS)
    nb, noa = parse_time(cond.get("NotBefore")), parse_time(cond.get("NotOnOrAfter"))
    need(nb <= now + datetime.timedelta(seconds=5) < noa + datetime.timedelta(seconds=5) and noa > now,
         f"Conditions window {nb}..{noa}")
    need([x.text for x in cond.findall("saml:AudienceRestriction/saml:Audience", NS)] == [ctx["sp"]], "Audience")
    authn = a.find("saml:AuthnStatement", NS)
    need(authn is not None and authn.get("AuthnInstant") and authn.get("SessionIndex"), "AuthnStatement")
    attrs = {}
    for at in a.findall("saml:AttributeStatement/saml:Attribute", NS):
        need(at.get("NameFormat") == BASIC, f"attribute {at.get('Name')} NameFormat {at.get('NameFormat')}")
        attrs[at.get("Name")] = [v.text for v in at.findall("saml:AttributeValue", NS)]
    need(attrs == ctx["attributes"], f"attributes {attrs}")


ALICE = {"uid": ["alice"], "mail": ["alice@example.com"], "displayName": ["Alice Liddell"],
         "eduPersonAffiliation": ["member", "staff"], "groups": ["staff", "sts-admins"]}
BOB = {"uid": ["bob"], "mail": ["bob@example.com"], "groups": ["contractors"]}


def flag_value(flags, name, default):
    return flags[flags.index(name) + 1] if name in flags else default


def check_mode(node, base_work, name, flags, keep_notes):
    work = tempfile.mkdtemp(prefix="mode-", dir=base_work)
    sign_key, sign_crt = openssl_pair(work, "sp-sign", "check-idp2 SP signing")
    enc_key, enc_crt = openssl_pair(work, "sp-enc", "check-idp2 SP encryption")
    sp_entity = "https://sp.check-idp2.example/metadata"
    acs = "http://127.0.0.1:9/acs"
    md_file = os.path.join(work, "sp.xml")
    open(md_file, "w").write(sp_metadata(sp_entity, acs, sign_crt, enc_crt))
    idp = Idp(node, md_file, flags)
    notes = []
    try:
        # --- the IdP's metadata: entity ID, HTTP-Redirect SSO, signing certificate
        status, ctype, md = fetch(idp.metadata_url)
        need(status == 200 and "samlmetadata+xml" in (ctype or ""), f"metadata HTTP {status} {ctype}")
        mdx = ET.fromstring(md)
        need(mdx.get("entityID") == idp.entity_id, "metadata entityID")
        sso = mdx.findall("md:IDPSSODescriptor/md:SingleSignOnService", NS)
        need(any(s.get("Binding").endswith("HTTP-Redirect") and s.get("Location") == idp.base + "/sso" for s in sso),
             "metadata SSO")
        kd = [k for k in mdx.findall("md:IDPSSODescriptor/md:KeyDescriptor", NS) if k.get("use") == "signing"]
        need(len(kd) == 1, "metadata signing KeyDescriptor")
        idp_cert = "".join(kd[0].find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS).text.split())
        idp_crt = os.path.join(work, "idp.crt")
        open(idp_crt, "w").write("-----BEGIN CERTIFICATE-----\n"
                                 + "\n".join(idp_cert[i:i + 64] for i in range(0, len(idp_cert), 64))
                                 + "\n-----END CERTIFICATE-----\n")

        # --- login
        request_id = "_req-" + secrets.token_hex(8)
        relay = "rs-" + secrets.token_urlsafe(12)
        v = login(authn_request_url(idp, sp_entity, acs, relay, request_id), "alice", "alicepw")
        need(v.get("ok") is True, f"login.py: {v}")
        need(v["acs_url"] == acs and v["relay_state"] == relay, f"ACS/RelayState {v['acs_url']} {v['relay_state']}")
        raw = base64.b64decode(v["saml_response"]).decode()
        open(os.path.join(work, "response.xml"), "w").write(raw)
        root = ET.fromstring(raw)
        need(root.tag == f"{{{NS['samlp']}}}Response", f"root {root.tag}")
        # The validator knows XML Encryption 1.0's schema, not 1.1's: an xenc11:MGF (rsa-oaep mode) fails its
        # strict ##other wildcard. It is checked below; the rest of the Response is validated without it.
        ok, err = schema_valid(node, re.sub(r"<(\w+:)?MGF [^>]*/>", "", raw))
        need(ok, "the Response is not schema-valid: " + err)
        need(root.get("Destination") == acs and root.get("InResponseTo") == request_id, "Destination/InResponseTo")
        need(root.find("saml:Issuer", NS).text == idp.entity_id, "Response Issuer")
        need(root.find("samlp:Status/samlp:StatusCode", NS).get("Value").endswith(":Success"), "Status")

        sign_response = "--sign-response" in flags
        sign_assertion = "--no-sign-assertion" not in flags
        encrypted = "--encrypt-assertion" in flags
        prefixes = flag_value(flags, "--prefixes", "default")
        ctx = {"idp": idp.entity_id, "sp": sp_entity, "acs": acs, "request_id": request_id, "user": "alice",
               "attributes": ALICE}

        # --- the Response signature
        rsigs = root.findall("ds:Signature", NS)
        need(len(rsigs) == (1 if sign_response else 0), f"{len(rsigs)} Response signatures, want {int(sign_response)}")
        if sign_response:
            need(list(root).index(rsigs[0]) == 1, "Response signature is not right after the Issuer")
            need(check_signature_shape(rsigs[0], "Response signature") == "#" + root.get("ID"),
                 "Response signature does not reference the Response")
            ok, out = xmlsec_verify(work, raw, idp_crt, xp("Signature"), "response")
            need(ok, "xmlsec1 --verify of the Response signature failed: " + out)
            # tampered: one character of the signed content changed
            if encrypted:
                m = re.search(r"CipherValue>([A-Za-z0-9+/])", raw)
                c = m.group(1)
                bad = raw[:m.start(1)] + ("A" if c != "A" else "B") + raw[m.end(1):]
            else:
                bad = raw.replace(">alice</", ">alicf</", 1)
            ok, _ = xmlsec_verify(work, bad, idp_crt, xp("Signature"), "response-tampered")
            need(not ok, "a tampered Response still verified")
            _, other_crt = openssl_pair(work, "other", "someone else")
            ok, _ = xmlsec_verify(work, raw, other_crt, xp("Signature"), "response-otherkey")
            need(not ok, "the Response verified with another certificate")
            notes.append("Response sig verified")

        # --- the assertion (decrypted first when encrypted)
        if encrypted:
            need(root.find("saml:Assertion", NS) is None, "a plaintext Assertion next to the encrypted one")
            ea = root.findall("saml:EncryptedAssertion", NS)
            need(len(ea) == 1, f"{len(ea)} EncryptedAssertions")
            ea = ea[0]
            need(">alice<" not in raw, "plaintext NameID visible")
            eds = ea.findall("xenc:EncryptedData", NS)
            need(len(eds) == 1, "EncryptedData count")
            ed = eds[0]
            want_enc = ENC_ALGS[flag_value(flags, "--enc-alg", "aes256-gcm")]
            need(ed.find("xenc:EncryptionMethod", NS).get("Algorithm") == want_enc,
                 f"content algorithm {ed.find('xenc:EncryptionMethod', NS).get('Algorithm')}, want {want_enc}")
            layout = flag_value(flags, "--key-layout", "inside")
            inside = ed.findall("ds:KeyInfo/xenc:EncryptedKey", NS)
            beside = ea.findall("xenc:EncryptedKey", NS)
            if layout == "inside":
                need(len(inside) == 1 and not beside, f"EncryptedKey inside: {len(inside)}, beside: {len(beside)}")
                ek = inside[0]
                need(ed.find("ds:KeyInfo/ds:RetrievalMethod", NS) is None, "RetrievalMethod in the inside layout")
            else:
                need(len(beside) == 1 and not inside, f"EncryptedKey beside: {len(beside)}, inside: {len(inside)}")
                ek = beside[0]
                kids = list(ea)
                need(kids.index(ek) == kids.index(ed) + 1, "EncryptedKey is not the EncryptedData's next sibling")
                rms = ed.findall("ds:KeyInfo/ds:RetrievalMethod", NS)
                need(len(rms) == 1 and len(list(ed.find("ds:KeyInfo", NS))) == 1, "EncryptedData KeyInfo content")
                need(rms[0].get("Type") == "http://www.w3.org/2001/04/xmlenc#EncryptedKey", "RetrievalMethod Type")
                need(ek.get("Id") and rms[0].get("URI") == "#" + ek.get("Id"), "RetrievalMethod URI != #EncryptedKey Id")
                need(ek.get("Recipient") == sp_entity, "EncryptedKey Recipient")
                dr = ek.findall("xenc:ReferenceList/xenc:DataReference", NS)
                need(len(dr) == 1 and dr[0].get("URI") == "#" + ed.get("Id"), "ReferenceList/DataReference")
            x509 = ek.find("ds:KeyInfo/ds:X509Data/ds:X509Certificate", NS)
            need(x509 is not None and "".join(x509.text.split()) == cert_b64(enc_crt),
                 "EncryptedKey's KeyInfo does not carry the SP *encryption* certificate")
            km = ek.find("xenc:EncryptionMethod", NS)
            transport = flag_value(flags, "--key-transport", "rsa-oaep-mgf1p")
            need(km.get("Algorithm") == KEY_TRANSPORTS[transport], f"key transport {km.get('Algorithm')}")
            need(km.find("ds:DigestMethod", NS).get("Algorithm") == "http://www.w3.org/2000/09/xmldsig#sha1",
                 "OAEP DigestMethod")
            if transport == "rsa-oaep":
                mgf = km.find("xenc11:MGF", NS)
                need(mgf is not None and mgf.get("Algorithm") == "http://www.w3.org/2009/xmlenc11#mgf1sha1", "MGF")
            to_decrypt = raw
            if transport == "rsa-oaep":
                # xmlsec1 1.2.x does not know http://www.w3.org/2009/xmlenc11#rsa-oaep (1.3 does). Unwrap the
                # content key with openssl and the parameters the markup states (OAEP, SHA-1 digest, MGF1 with
                # SHA-1); then let xmlsec1 decrypt a copy relabelled with the equivalent xmlenc#rsa-oaep-mgf1p.
                wrapped = base64.b64decode("".join(ek.find("xenc:CipherData/xenc:CipherValue", NS).text.split()))
                wf = os.path.join(work, "wrapped.bin")
                open(wf, "wb").write(wrapped)
                r = subprocess.run(["openssl", "pkeyutl", "-decrypt", "-inkey", enc_key, "-in", wf,
                                    "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha1",
                                    "-pkeyopt", "rsa_mgf1_md:sha1"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                want_len = 16 if "128" in want_enc else 32
                need(r.returncode == 0 and len(r.stdout) == want_len,
                     f"openssl could not unwrap the rsa-oaep key: {r.stderr.decode()[:300]}")
                r = subprocess.run(["openssl", "pkeyutl", "-decrypt", "-inkey", enc_key, "-in", wf,
                                    "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                need(r.returncode != 0, "the rsa-oaep key also unwraps with SHA-256 OAEP")
                to_decrypt = re.sub(r"<([\w]+:)?MGF [^>]*/>", "", raw).replace(
                    KEY_TRANSPORTS["rsa-oaep"], KEY_TRANSPORTS["rsa-oaep-mgf1p"])
                notes.append("rsa-oaep key unwrapped by openssl (OAEP sha1/mgf1sha1)")
            # decrypt with the SP's encryption key; with the signing key it must fail
            plain, err = xmlsec_decrypt(work, to_decrypt, enc_key, "enc")
            need(plain is not None, f"xmlsec1 --decrypt with the SP encryption key failed: {err}")
            wrong, _ = xmlsec_decrypt(work, to_decrypt, sign_key, "wrongkey")
            need(wrong is None, "decrypted with the SP *signing* key")
            if layout == "beside":
                # control: xmlsec1 found the key through the RetrievalMethod, not by luck
                broken = to_decrypt.replace('URI="#' + ek.get("Id") + '"', 'URI="#_no-such-key"', 1)
                need(broken != to_decrypt, "RetrievalMethod URI not found in the raw XML")
                nothing, _ = xmlsec_decrypt(work, broken, enc_key, "broken-retrieval")
                need(nothing is None, "decrypted although the RetrievalMethod points nowhere")
                notes.append("RetrievalMethod followed by xmlsec1")
            proot = ET.fromstring(plain)
            assertions = proot.findall("saml:EncryptedAssertion/saml:Assertion", NS)
            need(len(assertions) == 1, "no Assertion after decryption")
            assertion = assertions[0]
            assertion_doc = plain
            assertion_xpath = xp("Signature", xp("Assertion", xp("EncryptedAssertion")))
            m = re.search(r"<(\w+:)?Assertion[ >].*</(\w+:)?Assertion>", plain, re.S)
            ok, err = schema_valid(node, m.group(0))
            need(ok, "the decrypted Assertion is not schema-valid: " + err)
            notes.append(f"decrypted ({flag_value(flags, '--enc-alg', 'aes256-gcm')}, {transport}, key {layout})")
        else:
            need(root.find("saml:EncryptedAssertion", NS) is None, "unexpected EncryptedAssertion")
            assertions = root.findall("saml:Assertion", NS)
            need(len(assertions) == 1, f"{len(assertions)} assertions")
            assertion = assertions[0]
            assertion_doc = raw
            assertion_xpath = xp("Signature", xp("Assertion"))

        asigs = assertion.findall("ds:Signature", NS)
        need(len(asigs) == (1 if sign_assertion else 0), f"{len(asigs)} assertion signatures, want {int(sign_assertion)}")
        if sign_assertion:
            need(list(assertion).index(asigs[0]) == 1, "assertion signature is not right after its Issuer")
            need(check_signature_shape(asigs[0], "assertion signature") == "#" + assertion.get("ID"),
                 "assertion signature does not reference the assertion")
            ok, out = xmlsec_verify(work, assertion_doc, idp_crt, assertion_xpath, "assertion")
            need(ok, "xmlsec1 --verify of the assertion signature failed: " + out)
            bad = assertion_doc.replace(">sts-admins<", ">sts-adminz<", 1)
            need(bad != assertion_doc, "tamper target missing")
            ok, _ = xmlsec_verify(work, bad, idp_crt, assertion_xpath, "assertion-tampered")
            need(not ok, "a tampered assertion still verified")
            _, other_crt = openssl_pair(work, "other2", "someone else")
            ok, _ = xmlsec_verify(work, assertion_doc, other_crt, assertion_xpath, "assertion-otherkey")
            need(not ok, "the assertion verified with another certificate")
            notes.append("assertion sig verified")
        check_assertion(assertion, ctx)
        notes.append("schema-valid")
        if not sign_response and not sign_assertion:
            need("Signature" not in raw, "a signature in the unsigned mode")
            notes.append("no signature at all")
        notes.append("SAML content ok")

        # --- prefixes
        if prefixes == "saml2":
            need(raw.lstrip().startswith("<saml2p:Response"), "root prefix is not saml2p")
            need(not re.search(r"</?samlp?:", raw), "samlp:/saml: prefixes left")
            need("<saml2:Issuer>" in raw, "no saml2: prefix")
            if sign_response:
                need("<dsig:Signature" in raw.split("<saml2p:Status")[0], "Response signature prefix is not dsig")
            if encrypted:
                enc_part = raw[raw.index("<saml2:EncryptedAssertion"):raw.index("</saml2:EncryptedAssertion>")]
                need("<xenc:EncryptedData" in enc_part and "<xenc:EncryptedKey" in enc_part
                     and "<dsig:KeyInfo" in enc_part and "<dsig:X509Certificate>" in enc_part,
                     "EncryptedAssertion prefixes are not xenc:/dsig:")
                need(not re.search(r"<(e|ds):|<KeyInfo|<X509", enc_part), "xml-encryption's own prefixes left")
                if flag_value(flags, "--key-transport", "rsa-oaep-mgf1p") == "rsa-oaep":
                    need("<xenc11:MGF" in enc_part, "no xenc11: prefix")
                if flag_value(flags, "--key-layout", "inside") == "beside":
                    need("<dsig:RetrievalMethod" in enc_part, "RetrievalMethod prefix")
            if sign_assertion:
                need(re.search(r"<saml2:Assertion[^>]*>\s*<saml2:Issuer>[^<]*</saml2:Issuer>\s*<ds:Signature",
                               assertion_doc), "assertion signature (samlify: always ds:) not found")
            notes.append("prefixes saml2p:/saml2:, dsig: (Response signature)"
                         + (", xenc:/dsig: (encryption)" if encrypted else ""))
        else:
            need(raw.lstrip().startswith("<samlp:Response"), "root prefix is not samlp")
            need("<saml:Issuer>" in raw, "no saml: prefix")
            if encrypted:
                # xml-encryption's own markup: an unprefixed (default-namespace) ds:KeyInfo, e: for EncryptedKey
                need('<KeyInfo xmlns="http://www.w3.org/2000/09/xmldsig#">' in raw and "<e:EncryptedKey" in raw,
                     "xml-encryption's native markup expected")
                notes.append("xml-encryption's native prefixes (unprefixed ds:KeyInfo, e:EncryptedKey)")
        keep_notes.append((name, notes))
    finally:
        idp.stop()
        if os.environ.get("CHECK_IDP2_STDERR"):
            print(idp.stderr(), file=sys.stderr)


def check_protocol(node, base_work):
    """bob, wrong password, wrong ACS, IdP-initiated, SSO with cookies."""
    work = tempfile.mkdtemp(prefix="proto-", dir=base_work)
    _, sign_crt = openssl_pair(work, "sp-sign", "sp signing")
    _, enc_crt = openssl_pair(work, "sp-enc", "sp encryption")
    sp_entity, acs = "https://sp.check-idp2.example/metadata", "http://127.0.0.1:9/acs"
    md_file = os.path.join(work, "sp.xml")
    open(md_file, "w").write(sp_metadata(sp_entity, acs, sign_crt, enc_crt))
    idp = Idp(node, md_file, [])
    notes = []
    try:
        rid = "_req-" + secrets.token_hex(8)
        v = login(authn_request_url(idp, sp_entity, acs, "r1", rid), "bob", "bobpw")
        need(v.get("ok") is True, f"bob: {v}")
        a = ET.fromstring(base64.b64decode(v["saml_response"])).find("saml:Assertion", NS)
        check_assertion(a, {"idp": idp.entity_id, "sp": sp_entity, "acs": acs, "request_id": rid, "user": "bob",
                            "attributes": BOB})
        notes.append("bob ok")

        v = login(authn_request_url(idp, sp_entity, acs, "r2", "_req-x"), "alice", "wrong")
        need(v.get("ok") is False and "login failed" in v.get("error", ""), f"wrong password: {v}")
        v = login(authn_request_url(idp, sp_entity, acs, "r2", "_req-y"), "mallory", "alicepw")
        need(v.get("ok") is False and "login failed" in v.get("error", ""), f"unknown user: {v}")
        notes.append("wrong password/user -> login failed")

        v = login(authn_request_url(idp, sp_entity, "http://127.0.0.1:9/other-acs", "r3", "_req-z"), "alice", "alicepw")
        need(v.get("ok") is False and v.get("last_status") == 400, f"other ACS: {v}")
        v = login(authn_request_url(idp, "https://unknown-sp.example", acs, "r3", "_req-w"), "alice", "alicepw")
        need(v.get("ok") is False and v.get("last_status") == 400, f"unknown SP: {v}")
        notes.append("other ACS / unknown SP refused")

        q = urllib.parse.urlencode({"spentityid": sp_entity, "RelayState": "/next"})
        v = login(f"{idp.base}/sso?{q}", "alice", "alicepw")
        need(v.get("ok") is True and v["relay_state"] == "/next", f"IdP-initiated: {v}")
        x = base64.b64decode(v["saml_response"]).decode()
        need("InResponseTo" not in x, "IdP-initiated response has InResponseTo")
        notes.append("IdP-initiated ok")

        jar = os.path.join(work, "cookies.txt")
        v = login(authn_request_url(idp, sp_entity, acs, "s1", "_req-s1"), "alice", "alicepw", jar)
        need(v.get("ok") is True, f"SSO first: {v}")
        v = login(authn_request_url(idp, sp_entity, acs, "s2", "_req-s2"), "alice", "not-used", jar)
        need(v.get("ok") is True, f"SSO second (session cookie): {v}")
        need('InResponseTo="_req-s2"' in base64.b64decode(v["saml_response"]).decode(), "SSO InResponseTo")
        notes.append("SSO cookie ok")
    finally:
        idp.stop()
    return notes


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", help="substrings of mode names to run")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (printed)")
    args = ap.parse_args()
    for tool in ("openssl", "xmlsec1"):
        if not shutil.which(tool):
            sys.exit(f"check-idp2: {tool} missing: run scripts/install-deps --peers")
    try:
        node = open(os.path.join(NODE_DIR, ".node-path")).read().strip()
    except OSError:
        sys.exit("check-idp2: tests/peers/node/.node-path missing: run scripts/install-deps --peers")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "samlify")):
        sys.exit("check-idp2: samlify missing in tests/peers/node: run scripts/install-deps --peers")

    base_work = tempfile.mkdtemp(prefix="check-idp2-")
    failures = 0
    total = 0
    started = time.monotonic()
    try:
        for name, flags in MODES:
            if args.only and not any(o in name for o in args.only):
                continue
            total += 1
            notes = []
            try:
                check_mode(node, base_work, name, flags, notes)
                print(f"PASS  {name:50s} {' '.join(flags) or '(no flags)'}\n      " + "; ".join(notes[0][1]),
                      flush=True)
            except CheckFailed as e:
                failures += 1
                print(f"FAIL  {name:50s} {' '.join(flags)}\n      {e}", flush=True)
        if not args.only:
            total += 1
            try:
                print("PASS  protocol checks: " + "; ".join(check_protocol(node, base_work)), flush=True)
            except CheckFailed as e:
                failures += 1
                print(f"FAIL  protocol checks: {e}", flush=True)
    finally:
        if args.keep:
            print(f"work directory kept: {base_work}")
        else:
            shutil.rmtree(base_work, ignore_errors=True)
    print(f"check-idp2: {total - failures}/{total} passed in {time.monotonic() - started:.1f}s")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
