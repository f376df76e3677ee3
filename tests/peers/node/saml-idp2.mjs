// A second, independent SAML 2.0 identity provider for the STS interop tests: npm `samlify` (2.x) in IdP mode,
// next to SimpleSAMLphp (tests/peers/saml/start-idp.py). Different library, different XML: other prefixes,
// other signature placement, xml-encryption's EncryptedKey layout, AES-GCM, millisecond timestamps.
//
// usage: node saml-idp2.mjs --port P --sp-metadata FILE
//            [--sign-response] [--no-sign-assertion] [--encrypt-assertion]
//            [--enc-alg aes256-gcm|aes128-gcm|aes128-cbc|aes256-cbc] [--key-transport rsa-oaep-mgf1p|rsa-oaep]
//            [--key-layout inside|beside] [--prefixes default|saml2]
//
//   P     TCP port on 127.0.0.1 (0 = pick a free one; the READY line then tells which).
//   FILE  SAML metadata XML of the SP(s) to serve: an EntityDescriptor or an EntitiesDescriptor. For every
//         SPSSODescriptor: entityID, the first HTTP-POST AssertionConsumerService (the one with isDefault="true"
//         or the lowest index wins), and the encryption certificate: the KeyDescriptor use="encryption", else
//         one without `use`. WantAssertionsSigned/AuthnRequestsSigned in FILE are ignored: the flags decide.
//
// At start: a fresh RSA-2048 key and self-signed certificate (openssl CLI, in a temp dir removed on exit).
// Entity ID = metadata URL = http://127.0.0.1:P/metadata. Prints exactly one line on stdout once listening:
//
//     READY <idp-entity-id> <idp-metadata-url>
//
// Everything else goes to stderr. Runs until SIGTERM/SIGINT. Exit status 2 (and no READY line) on bad usage or
// when the IdP cannot be set up.
//
// Endpoints:
//   GET  /metadata  samlify's IdP metadata: IDPSSODescriptor, KeyDescriptor use="signing" with the certificate,
//                   NameIDFormat unspecified, SingleSignOnService HTTP-Redirect at http://127.0.0.1:P/sso.
//   GET  /sso?SAMLRequest=..&RelayState=..[&SigAlg=..&Signature=..]
//                   HTTP-Redirect AuthnRequest, parsed (and schema-checked with xmllint) by samlify's
//                   parseLoginRequest; the redirect signature is not checked. Refused with an HTTP 400 page:
//                   an Issuer that is no SP of FILE, an AssertionConsumerServiceURL other than that SP's ACS, a
//                   ProtocolBinding other than HTTP-POST. Answers the login form (below), or, with this IdP's
//                   session cookie and without ForceAuthn="true", the SAMLResponse form at once.
//   GET  /sso?spentityid=<SP entity ID>[&RelayState=..]
//                   IdP-initiated (unsolicited) login for that SP: the same form; the response has no InResponseTo.
//   POST /login     username, password, AuthState (form fields). Right password: an HTML page with an
//                   auto-submitting <form method="post" action="<ACS>"> holding SAMLResponse (base64) and RelayState
//                   (when the request had one), and a session cookie samlify-idp2-<P>. Wrong password: the login
//                   form again, same AuthState, with "Incorrect username or password" (tests/peers/saml/login.py
//                   reports that as a failed login). An unknown or used AuthState: HTTP 400 page.
// The login form is <form method="post" action="/login"> with inputs username, password and hidden AuthState,
// the shape tests/peers/saml/login.py fills in (it looks for a form with AuthState and password fields).
//
// Users (the same as start-idp.py): alice/alicepw {uid alice, mail alice@example.com, displayName Alice Liddell,
// eduPersonAffiliation [member, staff], groups [staff, sts-admins]}; bob/bobpw {uid bob, mail bob@example.com,
// groups [contractors]}.
//
// The assertion: NameID = uid with Format urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified; Subject
// bearer confirmation with Recipient = ACS, InResponseTo, NotOnOrAfter = now + 5 min; Conditions NotBefore = now,
// NotOnOrAfter = now + 5 min, Audience = SP entity ID; an AuthnStatement (AuthnInstant, SessionIndex,
// AuthnContextClassRef ...:ac:classes:Password); an AttributeStatement, every attribute with NameFormat
// urn:oasis:names:tc:SAML:2.0:attrname-format:basic and one xs:string AttributeValue per value (groups is
// multi-valued). samlify's own response template, filled in through its customTagReplacement hook; samlify
// signs and encrypts (IdentityProvider.createLoginResponse with encryptThenSign = true).
// Signatures: RSA-SHA256, SHA-256 digests, exclusive c14n, enveloped, the certificate in ds:KeyInfo; the
// assertion's ds:Signature follows its Issuer, the Response's follows the Response's Issuer.
//
// Modes:
//   (default)                        only the Assertion is signed.
//   --sign-response                  the Assertion and the Response are signed.
//   --no-sign-assertion --sign-response   only the Response is signed.
//   --no-sign-assertion              nothing is signed. samlify cannot do that (it signs the Response whenever
//                                    the assertion is unsigned): its Response signature is removed afterwards.
//   --encrypt-assertion              the Assertion (signed or not, as above) becomes a saml:EncryptedAssertion
//                                    for the SP's encryption certificate; then the Response is signed when
//                                    asked (encrypt-then-sign: the Response signature covers the ciphertext).
//   --enc-alg A                      content encryption (default aes256-gcm): aes256-gcm, aes128-gcm
//                                    (http://www.w3.org/2009/xmlenc11#aesNNN-gcm: 12-byte IV || ciphertext ||
//                                    16-byte tag), aes128-cbc, aes256-cbc (http://www.w3.org/2001/04/xmlenc#).
//   --key-transport T                rsa-oaep-mgf1p (default): http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p
//                                    with a ds:DigestMethod sha1 (what samlify/xml-encryption write).
//                                    rsa-oaep: http://www.w3.org/2009/xmlenc11#rsa-oaep with ds:DigestMethod
//                                    sha1 and xenc11:MGF mgf1sha1 (XML Encryption 1.1's defaults, written out:
//                                    the same OAEP as mgf1p, which is what xml-encryption computes; only the
//                                    URIs differ, as with Shibboleth IdP 4+).
//   --key-layout inside              (default, xml-encryption's own) EncryptedData/ds:KeyInfo/xenc:EncryptedKey,
//                                    the EncryptedKey with its own ds:KeyInfo/ds:X509Data of the SP certificate.
//   --key-layout beside              the EncryptedKey (Id="_ek-…", Recipient = SP entity ID, a ReferenceList
//                                    naming the EncryptedData's Id) is moved next to the EncryptedData, inside
//                                    saml:EncryptedAssertion; the EncryptedData's ds:KeyInfo holds only
//                                    <ds:RetrievalMethod Type="http://www.w3.org/2001/04/xmlenc#EncryptedKey"
//                                    URI="#_ek-…"/>. Done on the encrypted XML before the Response is signed.
//   --prefixes default               samlify's samlp:/saml:, ds: for signatures; xml-encryption's xenc:/e: and
//                                    an unprefixed (default-namespace) ds:KeyInfo inside EncryptedData.
//   --prefixes saml2                 saml2p:/saml2: (samlify's tagPrefix option, also for EncryptedAssertion),
//                                    dsig: for the Response signature (samlify keeps ds: for the assertion's),
//                                    and in EncryptedAssertion xenc: for every XML Encryption element, dsig: for
//                                    every XML Signature one, xenc11: for XML Encryption 1.1 ones.
//
// samlify needs a schema validator: @authenio/samlify-node-xmllint (xmllint compiled to JS, the SAML schemas).

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { parseArgs } from 'node:util';

// samlify warns with console.warn/console.log (e.g. "missing endpoint of SingleLogoutService"): stdout is
// for the READY line only.
console.log = console.error;
console.info = console.error;
console.warn = console.error;

// CommonJS packages: their module.exports is the default export (named-export detection misses some of them).
const samlify = (await import('samlify')).default;
const validator = (await import('@authenio/samlify-node-xmllint')).default;
const { DOMParser, XMLSerializer } = await import('@xmldom/xmldom');

const NS = {
  md: 'urn:oasis:names:tc:SAML:2.0:metadata',
  saml: 'urn:oasis:names:tc:SAML:2.0:assertion',
  samlp: 'urn:oasis:names:tc:SAML:2.0:protocol',
  ds: 'http://www.w3.org/2000/09/xmldsig#',
  xenc: 'http://www.w3.org/2001/04/xmlenc#',
  xenc11: 'http://www.w3.org/2009/xmlenc11#',
};
const BINDING_POST = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST';
const BINDING_REDIRECT = 'urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect';
const NAMEID_UNSPECIFIED = 'urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified';
const NAMEFORMAT_BASIC = 'urn:oasis:names:tc:SAML:2.0:attrname-format:basic';
const ENC_ALGS = {
  'aes256-gcm': 'http://www.w3.org/2009/xmlenc11#aes256-gcm',
  'aes128-gcm': 'http://www.w3.org/2009/xmlenc11#aes128-gcm',
  'aes128-cbc': 'http://www.w3.org/2001/04/xmlenc#aes128-cbc',
  'aes256-cbc': 'http://www.w3.org/2001/04/xmlenc#aes256-cbc',
};
const RSA_OAEP_MGF1P = 'http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p';
const RSA_OAEP_11 = 'http://www.w3.org/2009/xmlenc11#rsa-oaep';
const MGF1_SHA1 = 'http://www.w3.org/2009/xmlenc11#mgf1sha1';
const RETRIEVAL_ENCRYPTED_KEY = 'http://www.w3.org/2001/04/xmlenc#EncryptedKey';

const USERS = {
  alice: {
    password: 'alicepw',
    attributes: {
      uid: ['alice'],
      mail: ['alice@example.com'],
      displayName: ['Alice Liddell'],
      eduPersonAffiliation: ['member', 'staff'],
      groups: ['staff', 'sts-admins'],
    },
  },
  bob: {
    password: 'bobpw',
    attributes: { uid: ['bob'], mail: ['bob@example.com'], groups: ['contractors'] },
  },
};

function log(msg) {
  console.error(`saml-idp2: ${msg}`);
}

function fail(msg) {
  log(msg);
  process.exit(2);
}

// ---------------------------------------------------------------- arguments
let args;
try {
  ({ values: args } = parseArgs({
    options: {
      port: { type: 'string' },
      'sp-metadata': { type: 'string' },
      'sign-response': { type: 'boolean', default: false },
      'no-sign-assertion': { type: 'boolean', default: false },
      'encrypt-assertion': { type: 'boolean', default: false },
      'enc-alg': { type: 'string', default: 'aes256-gcm' },
      'key-transport': { type: 'string', default: 'rsa-oaep-mgf1p' },
      'key-layout': { type: 'string', default: 'inside' },
      prefixes: { type: 'string', default: 'default' },
    },
    strict: true,
  }));
} catch (e) {
  fail(e.message);
}
if (args.port === undefined || !/^\d+$/.test(args.port)) fail('--port P is required (0: a free port)');
if (!args['sp-metadata']) fail('--sp-metadata FILE is required');
if (!(args['enc-alg'] in ENC_ALGS)) fail(`--enc-alg must be one of ${Object.keys(ENC_ALGS).join(', ')}`);
if (!['rsa-oaep-mgf1p', 'rsa-oaep'].includes(args['key-transport'])) {
  fail('--key-transport must be rsa-oaep-mgf1p or rsa-oaep');
}
if (!['inside', 'beside'].includes(args['key-layout'])) fail('--key-layout must be inside or beside');
if (!['default', 'saml2'].includes(args.prefixes)) fail('--prefixes must be default or saml2');
const signAssertion = !args['no-sign-assertion'];
const signResponse = args['sign-response'];
const encrypt = args['encrypt-assertion'];
const saml2Prefixes = args.prefixes === 'saml2';

// ---------------------------------------------------------------- XML helpers
// xmldom reports problems through onError/errorHandler; any error or fatal error refuses the document.
function parseXml(text, what) {
  const problems = [];
  const doc = new DOMParser({
    errorHandler: {
      warning: () => {},
      error: (m) => problems.push(m),
      fatalError: (m) => problems.push(m),
    },
  }).parseFromString(text, 'text/xml');
  if (problems.length || !doc || !doc.documentElement) {
    throw new Error(`${what} is not well-formed XML: ${problems.join('; ')}`);
  }
  return doc;
}

function elements(parent, ns, local) {
  return Array.from(parent.getElementsByTagNameNS(ns, local));
}

function children(parent, ns, local) {
  return Array.from(parent.childNodes).filter(
    (n) => n.nodeType === 1 && n.namespaceURI === ns && (local === undefined || n.localName === local),
  );
}

function escapeXml(s) {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]);
}

const escapeHtml = escapeXml;

// ---------------------------------------------------------------- the SP(s) from the metadata file
function readSps(file) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    fail(`cannot read the SP metadata ${file}: ${e.message}`);
  }
  let doc;
  try {
    doc = parseXml(text, file);
  } catch (e) {
    fail(e.message);
  }
  const sps = new Map();
  for (const ed of elements(doc, NS.md, 'EntityDescriptor')) {
    const entityID = ed.getAttribute('entityID');
    const spsso = children(ed, NS.md, 'SPSSODescriptor')[0];
    if (!entityID || !spsso) continue;
    const acsList = children(spsso, NS.md, 'AssertionConsumerService')
      .filter((a) => a.getAttribute('Binding') === BINDING_POST && a.getAttribute('Location'))
      .map((a) => ({
        location: a.getAttribute('Location'),
        isDefault: a.getAttribute('isDefault') === 'true',
        index: Number.parseInt(a.getAttribute('index') || '0', 10) || 0,
      }))
      .sort((a, b) => (b.isDefault - a.isDefault) || (a.index - b.index));
    if (acsList.length === 0) {
      log(`SP ${entityID}: no HTTP-POST AssertionConsumerService, skipped`);
      continue;
    }
    const certOf = (kd) => {
      const c = elements(kd, NS.ds, 'X509Certificate')[0];
      return c ? c.textContent.replace(/\s+/g, '') : null;
    };
    const kds = children(spsso, NS.md, 'KeyDescriptor');
    const encKd = kds.find((k) => k.getAttribute('use') === 'encryption' && certOf(k))
      ?? kds.find((k) => !k.getAttribute('use') && certOf(k));
    sps.set(entityID, { entityID, acs: acsList[0].location, encryptCert: encKd ? certOf(encKd) : null });
    log(`SP ${entityID}: ACS ${acsList[0].location}; ${encKd ? 'an' : 'no'} encryption certificate`);
  }
  if (sps.size === 0) fail(`no SPSSODescriptor with an HTTP-POST ACS in ${file}`);
  return sps;
}

const spInfo = readSps(args['sp-metadata']);
if (encrypt) {
  for (const sp of spInfo.values()) {
    if (!sp.encryptCert) {
      fail(`--encrypt-assertion: SP ${sp.entityID} has no encryption key (KeyDescriptor use="encryption")`);
    }
  }
}

// ---------------------------------------------------------------- key and certificate
function makeKeyPair(port) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'saml-idp2-'));
  try {
    const keyFile = path.join(dir, 'idp.key');
    const crtFile = path.join(dir, 'idp.crt');
    const r = spawnSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-sha256', '-days', '2',
      '-subj', `/CN=samlify test IdP 127.0.0.1:${port}`, '-keyout', keyFile, '-out', crtFile,
    ], { encoding: 'utf8' });
    if (r.error) fail(`openssl is not available: ${r.error.message}`);
    if (r.status !== 0) fail(`openssl failed: ${r.stderr}`);
    return { key: fs.readFileSync(keyFile, 'utf8'), cert: fs.readFileSync(crtFile, 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- post-processing of the encrypted XML
// Rebuild element `el` (and its subtree) with the prefixes of `prefixOf` (namespace -> prefix); other elements
// keep theirs. Attributes are copied as they are (none of the XML Encryption ones is prefixed).
function rePrefix(doc, el, prefixOf) {
  const prefix = prefixOf[el.namespaceURI];
  let out = el;
  if (prefix !== undefined && el.prefix !== prefix) {
    out = doc.createElementNS(el.namespaceURI, `${prefix}:${el.localName}`);
    for (const a of Array.from(el.attributes)) {
      // the namespace declarations of the old prefixes are not needed: the serializer declares what is used
      if (a.name === 'xmlns' || a.name.startsWith('xmlns:')) continue;
      if (a.namespaceURI) out.setAttributeNS(a.namespaceURI, a.name, a.value);
      else out.setAttribute(a.name, a.value);
    }
    while (el.firstChild) out.appendChild(el.firstChild);
    el.parentNode.replaceChild(out, el);
  }
  for (const c of Array.from(out.childNodes)) {
    if (c.nodeType === 1) rePrefix(doc, c, prefixOf);
  }
  return out;
}

// What samlify's encryptAssertion returned (base64 of the whole Response with the EncryptedAssertion) -> the
// same with this run's key transport URIs, key layout and prefixes.
function reshapeEncrypted(b64, sp) {
  const doc = parseXml(Buffer.from(b64, 'base64').toString('utf8'), 'samlify encryptAssertion output');
  const encAssertion = elements(doc, NS.saml, 'EncryptedAssertion')[0];
  if (!encAssertion) throw new Error('no EncryptedAssertion after encryption');
  const data = children(encAssertion, NS.xenc, 'EncryptedData')[0];
  const dataKeyInfo = data && children(data, NS.ds, 'KeyInfo')[0];
  const key = dataKeyInfo && children(dataKeyInfo, NS.xenc, 'EncryptedKey')[0];
  if (!key) throw new Error('xml-encryption did not put the EncryptedKey inside EncryptedData/KeyInfo');

  if (args['key-transport'] === 'rsa-oaep') {
    const method = children(key, NS.xenc, 'EncryptionMethod')[0];
    if (method.getAttribute('Algorithm') !== RSA_OAEP_MGF1P) {
      throw new Error(`unexpected key transport ${method.getAttribute('Algorithm')}`);
    }
    method.setAttribute('Algorithm', RSA_OAEP_11);
    const mgf = doc.createElementNS(NS.xenc11, 'xenc11:MGF');
    mgf.setAttribute('Algorithm', MGF1_SHA1);
    method.appendChild(mgf);
  }

  if (args['key-layout'] === 'beside') {
    const keyId = `_ek-${crypto.randomUUID()}`;
    const dataId = `_ed-${crypto.randomUUID()}`;
    data.setAttribute('Id', dataId);
    key.setAttribute('Id', keyId);
    key.setAttribute('Recipient', sp.entityID);
    // xenc:EncryptedKey content order: EncryptionMethod, ds:KeyInfo, CipherData, EncryptionProperties?,
    // ReferenceList?, CarriedKeyName?: the ReferenceList goes last (xml-encryption writes neither of the others).
    const refs = doc.createElementNS(NS.xenc, `${key.prefix}:ReferenceList`);
    const dataRef = doc.createElementNS(NS.xenc, `${key.prefix}:DataReference`);
    dataRef.setAttribute('URI', `#${dataId}`);
    refs.appendChild(dataRef);
    key.appendChild(refs);
    dataKeyInfo.removeChild(key);
    encAssertion.insertBefore(key, data.nextSibling);
    while (dataKeyInfo.firstChild) dataKeyInfo.removeChild(dataKeyInfo.firstChild);
    const rm = doc.createElementNS(NS.ds, dataKeyInfo.prefix ? `${dataKeyInfo.prefix}:RetrievalMethod` : 'RetrievalMethod');
    rm.setAttribute('Type', RETRIEVAL_ENCRYPTED_KEY);
    rm.setAttribute('URI', `#${keyId}`);
    dataKeyInfo.appendChild(rm);
  }

  if (saml2Prefixes) {
    rePrefix(doc, encAssertion, { [NS.xenc]: 'xenc', [NS.ds]: 'dsig', [NS.xenc11]: 'xenc11' });
  }
  return Buffer.from(new XMLSerializer().serializeToString(doc), 'utf8').toString('base64');
}

// samlify's binding code calls SamlLib.encryptAssertion between the assertion signature and the Response
// signature (encrypt-then-sign): the layout changes go there, so the Response signature covers them.
const samlLib = samlify.SamlLib;
const originalEncryptAssertion = samlLib.encryptAssertion;
samlLib.encryptAssertion = async function (source, target, xml) {
  const b64 = await originalEncryptAssertion.call(this, source, target, xml);
  return reshapeEncrypted(b64, { entityID: target.entityMeta.getEntityID() });
};

// ---------------------------------------------------------------- the response
function attributeStatement(A, attributes) {
  const attrs = Object.entries(attributes).map(([name, values]) =>
    `<${A}:Attribute Name="${escapeXml(name)}" NameFormat="${NAMEFORMAT_BASIC}">`
    + values.map((v) => `<${A}:AttributeValue xsi:type="xs:string">${escapeXml(v)}</${A}:AttributeValue>`).join('')
    + `</${A}:Attribute>`).join('');
  return `<${A}:AttributeStatement>${attrs}</${A}:AttributeStatement>`;
}

function authnStatement(A, now, sessionIndex) {
  return `<${A}:AuthnStatement AuthnInstant="${now}" SessionIndex="${sessionIndex}">`
    + `<${A}:AuthnContext><${A}:AuthnContextClassRef>urn:oasis:names:tc:SAML:2.0:ac:classes:Password`
    + `</${A}:AuthnContextClassRef></${A}:AuthnContext></${A}:AuthnStatement>`;
}

// Remove the Response's own ds:Signature (for --no-sign-assertion without --sign-response).
function stripResponseSignature(b64) {
  const doc = parseXml(Buffer.from(b64, 'base64').toString('utf8'), 'samlify response');
  for (const sig of children(doc.documentElement, NS.ds, 'Signature')) doc.documentElement.removeChild(sig);
  return Buffer.from(new XMLSerializer().serializeToString(doc), 'utf8').toString('base64');
}

let idp = null;
const spEntities = new Map();

async function samlResponse(sp, requestId, username) {
  const user = USERS[username];
  const A = saml2Prefixes ? 'saml2' : 'saml';
  const entity = spEntities.get(sp.entityID);
  const now = new Date();
  const later = new Date(now.getTime() + 5 * 60 * 1000);
  const sessionIndex = `_s-${crypto.randomUUID()}`;
  const res = await idp.createLoginResponse(entity, requestId ? { extract: { request: { id: requestId } } } : {},
    'post', { email: user.attributes.uid[0] }, {
      encryptThenSign: true,
      customTagReplacement: (template) => {
        const id = idp.entitySetting.generateID();
        const filled = template
          .replace('{AuthnStatement}', authnStatement(A, now.toISOString(), sessionIndex))
          .replace('{AttributeStatement}', attributeStatement(A, user.attributes));
        const context = samlLib.replaceTagsByValue(filled, {
          ID: id,
          AssertionID: idp.entitySetting.generateID(),
          Destination: sp.acs,
          Audience: sp.entityID,
          SubjectRecipient: sp.acs,
          Issuer: idp.entityMeta.getEntityID(),
          IssueInstant: now.toISOString(),
          StatusCode: 'urn:oasis:names:tc:SAML:2.0:status:Success',
          ConditionsNotBefore: now.toISOString(),
          ConditionsNotOnOrAfter: later.toISOString(),
          SubjectConfirmationDataNotOnOrAfter: later.toISOString(),
          NameIDFormat: NAMEID_UNSPECIFIED,
          NameID: user.attributes.uid[0],
          // undefined drops the attribute (IdP-initiated: no InResponseTo at all)
          InResponseTo: requestId || undefined,
        });
        return { id, context };
      },
    });
  return signAssertion || signResponse ? res.context : stripResponseSignature(res.context);
}

// ---------------------------------------------------------------- HTTP
const pending = new Map(); // AuthState -> { sp, requestId, relayState, created }
const sessions = new Map(); // session cookie value -> username
const PENDING_TTL_MS = 10 * 60 * 1000;

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, {
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'Content-Length': Buffer.byteLength(body),
    ...headers,
  });
  res.end(body);
}

function page(title, body) {
  return `<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title></head>`
    + `<body><h1>${escapeHtml(title)}</h1>${body}</body></html>\n`;
}

function errorPage(res, status, message) {
  log(`${status}: ${message}`);
  send(res, status, 'text/html; charset=utf-8', page('samlify IdP error', `<p id="error">${escapeHtml(message)}</p>`));
}

function loginForm(res, authState, error) {
  const html = page('samlify test IdP: sign in',
    (error ? `<p id="error">${escapeHtml(error)}</p>` : '')
    + '<form method="post" action="/login">'
    + '<label>Username <input type="text" name="username" value=""></label>'
    + '<label>Password <input type="password" name="password" value=""></label>'
    + `<input type="hidden" name="AuthState" value="${escapeHtml(authState)}">`
    + '<button type="submit">Sign in</button></form>');
  send(res, 200, 'text/html; charset=utf-8', html);
}

async function answerWithResponse(res, flow, username, extraHeaders = {}) {
  const b64 = await samlResponse(flow.sp, flow.requestId, username);
  const relay = flow.relayState !== undefined && flow.relayState !== null
    ? `<input type="hidden" name="RelayState" value="${escapeHtml(flow.relayState)}">` : '';
  const html = page('samlify test IdP: continue',
    `<form method="post" action="${escapeHtml(flow.sp.acs)}">`
    + `<input type="hidden" name="SAMLResponse" value="${escapeHtml(b64)}">${relay}`
    + '<noscript><button type="submit">Continue</button></noscript></form>'
    + '<script>document.forms[0].submit()</script>');
  log(`SAMLResponse for ${username} to ${flow.sp.acs} (InResponseTo ${flow.requestId ?? 'none'})`);
  send(res, 200, 'text/html; charset=utf-8', html, extraHeaders);
}

function readBody(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new Error('request body too large'));
        req.destroy();
      } else {
        chunks.push(c);
      }
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

let cookieName = 'samlify-idp2';

function sessionUser(req) {
  for (const part of (req.headers.cookie || '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === cookieName) return sessions.get(v.join('=')) ?? null;
  }
  return null;
}

async function handleSso(req, res, url) {
  const q = Object.fromEntries(url.searchParams);
  let flow;
  if (q.SAMLRequest !== undefined) {
    // Parsed by samlify (inflate, schema check); with any SP entity: the redirect signature is not checked,
    // and the SP that answers is the request's Issuer.
    let parsed;
    try {
      const octetString = url.search.slice(1);
      parsed = await idp.parseLoginRequest(spEntities.values().next().value, 'redirect', { query: q, octetString });
    } catch (e) {
      return errorPage(res, 400, `AuthnRequest refused by samlify: ${e?.message ?? e}`);
    }
    const issuer = parsed.extract?.issuer;
    const sp = spInfo.get(issuer);
    if (!sp) return errorPage(res, 400, `unknown SP (Issuer ${JSON.stringify(issuer)})`);
    const request = parsed.extract?.request ?? {};
    if (!request.id) return errorPage(res, 400, 'AuthnRequest without ID');
    const doc = parseXml(parsed.samlContent, 'AuthnRequest');
    const root = doc.documentElement;
    const acsUrl = root.getAttribute('AssertionConsumerServiceURL');
    if (acsUrl && acsUrl !== sp.acs) {
      return errorPage(res, 400, `AssertionConsumerServiceURL ${acsUrl} is not the ACS of ${sp.entityID} (${sp.acs})`);
    }
    const binding = root.getAttribute('ProtocolBinding');
    if (binding && binding !== BINDING_POST) return errorPage(res, 400, `ProtocolBinding ${binding} is not supported`);
    flow = { sp, requestId: request.id, relayState: q.RelayState, force: root.getAttribute('ForceAuthn') === 'true' };
    log(`AuthnRequest ${request.id} from ${sp.entityID}${flow.force ? ' (ForceAuthn)' : ''}`);
  } else if (q.spentityid !== undefined) {
    const sp = spInfo.get(q.spentityid);
    if (!sp) return errorPage(res, 400, `unknown SP ${JSON.stringify(q.spentityid)}`);
    flow = { sp, requestId: null, relayState: q.RelayState, force: false };
    log(`IdP-initiated login for ${sp.entityID}`);
  } else {
    return errorPage(res, 400, 'neither SAMLRequest nor spentityid');
  }
  const known = sessionUser(req);
  if (known && !flow.force) return answerWithResponse(res, flow, known);
  const authState = crypto.randomBytes(24).toString('base64url');
  pending.set(authState, { ...flow, created: Date.now() });
  return loginForm(res, authState);
}

async function handleLogin(req, res) {
  const form = new URLSearchParams(await readBody(req));
  const authState = form.get('AuthState') ?? '';
  const flow = pending.get(authState);
  if (!flow || Date.now() - flow.created > PENDING_TTL_MS) {
    pending.delete(authState);
    return errorPage(res, 400, 'unknown, expired or used AuthState');
  }
  const username = form.get('username') ?? '';
  const user = Object.hasOwn(USERS, username) ? USERS[username] : null;
  const given = Buffer.from(form.get('password') ?? '');
  const want = Buffer.from(user ? user.password : '\0no user');
  const ok = user !== null && given.length === want.length && crypto.timingSafeEqual(given, want);
  if (!ok) {
    log(`wrong username or password for ${JSON.stringify(username)}`);
    return loginForm(res, authState, 'Incorrect username or password.');
  }
  pending.delete(authState);
  const sid = crypto.randomBytes(24).toString('base64url');
  sessions.set(sid, username);
  return answerWithResponse(res, flow, username, {
    'Set-Cookie': `${cookieName}=${sid}; Path=/; HttpOnly; SameSite=Lax`,
  });
}

const server = http.createServer(async (req, res) => {
  try {
    const url = new URL(req.url, 'http://127.0.0.1');
    log(`${req.method} ${url.pathname}`);
    if (!idp) return errorPage(res, 503, 'starting');
    if (req.method === 'GET' && url.pathname === '/metadata') {
      return send(res, 200, 'application/samlmetadata+xml', idp.getMetadata());
    }
    if (req.method === 'GET' && url.pathname === '/sso') return await handleSso(req, res, url);
    if (req.method === 'POST' && url.pathname === '/login') return await handleLogin(req, res);
    return errorPage(res, 404, `no route for ${req.method} ${url.pathname}`);
  } catch (e) {
    log(`${req.method} ${req.url}: ${e?.stack ?? e}`);
    if (!res.headersSent) errorPage(res, 500, `internal error: ${e?.message ?? e}`);
    else res.destroy();
  }
});
server.on('error', (e) => fail(`server error: ${e.stack ?? e}`));
await new Promise((resolve) => server.listen(Number(args.port), '127.0.0.1', resolve));
const port = server.address().port;
cookieName = `samlify-idp2-${port}`;
const base = `http://127.0.0.1:${port}`;
const entityId = `${base}/metadata`;

// ---------------------------------------------------------------- samlify entities
samlify.setSchemaValidator(validator);
const { key, cert } = makeKeyPair(port);
const tagPrefix = saml2Prefixes
  ? { protocol: 'saml2p', assertion: 'saml2', encryptedAssertion: 'saml2' }
  : { encryptedAssertion: 'saml' };
idp = samlify.IdentityProvider({
  entityID: entityId,
  signingCert: cert,
  privateKey: key,
  wantAuthnRequestsSigned: false,
  singleSignOnService: [{ Binding: BINDING_REDIRECT, Location: `${base}/sso` }],
  nameIDFormat: [NAMEID_UNSPECIFIED],
  requestSignatureAlgorithm: 'http://www.w3.org/2001/04/xmldsig-more#rsa-sha256',
  isAssertionEncrypted: encrypt,
  dataEncryptionAlgorithm: ENC_ALGS[args['enc-alg']],
  keyEncryptionAlgorithm: RSA_OAEP_MGF1P,
  tagPrefix,
});
for (const sp of spInfo.values()) {
  spEntities.set(sp.entityID, samlify.ServiceProvider({
    entityID: sp.entityID,
    assertionConsumerService: [{ Binding: BINDING_POST, Location: sp.acs }],
    ...(sp.encryptCert ? { encryptCert: sp.encryptCert } : {}),
    // samlify signs the assertion when the SP "wants assertions signed", and the Response when it "wants
    // messages signed" or the assertion is not signed.
    wantAssertionsSigned: signAssertion,
    wantMessageSigned: signResponse,
    ...(saml2Prefixes ? {
      signatureConfig: {
        prefix: 'dsig',
        location: { reference: "/*[local-name(.)='Response']/*[local-name(.)='Issuer']", action: 'after' },
      },
    } : {}),
  }));
}
log(`listening on ${base}; sign assertion ${signAssertion}, sign response ${signResponse}, encrypt ${encrypt}`
  + (encrypt ? ` (${args['enc-alg']}, ${args['key-transport']}, key ${args['key-layout']})` : '')
  + `, prefixes ${args.prefixes}`);

for (const sig of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
  process.on(sig, () => {
    log(`got ${sig}, stopping`);
    server.close();
    process.exit(0);
  });
}
process.stdout.write(`READY ${entityId} ${entityId}\n`);
