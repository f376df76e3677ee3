//! libxmlsec1 reports errors through a global callback that prints to stderr by default; route them
//! to our log at debug level instead (every crypto failure already surfaces as a reason code).
use std::ffi::{CStr, c_char, c_int};

type Callback = unsafe extern "C" fn(
    *const c_char,
    c_int,
    *const c_char,
    *const c_char,
    *const c_char,
    c_int,
    *const c_char,
);

#[link(name = "xmlsec1")]
unsafe extern "C" {
    fn xmlSecErrorsSetCallback(callback: Option<Callback>);
    fn xmlSecIOCleanupCallbacks();
}

unsafe extern "C" fn to_tracing(
    _file: *const c_char,
    _line: c_int,
    func: *const c_char,
    object: *const c_char,
    subject: *const c_char,
    reason: c_int,
    msg: *const c_char,
) {
    // SAFETY: xmlsec passes NUL-terminated strings or null pointers, valid for this call.
    let text = |p: *const c_char| {
        if p.is_null() {
            String::new()
        } else {
            unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
        }
    };
    tracing::debug!(target: "xmlsec", func = %text(func), object = %text(object), subject = %text(subject), reason, message = %text(msg), "xmlsec");
}

/// Install the callback. samael initialises libxmlsec1 lazily (on the first key it loads), and that
/// initialisation (xmlsec-openssl's) resets the callback to one that prints to stderr: force it first
/// with a verification of a document without a signature, which loads `cert` and stops quietly at
/// "no Signature element" (no xmlsec error is raised, so nothing is printed), then install ours.
pub fn install(cert: &samael::crypto::CertificateDer) {
    use samael::crypto::{Crypto, CryptoProvider};
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = Crypto::verify_signed_xml("<a/>", cert, None);
        // SAFETY: as above.
        unsafe { xmlSecErrorsSetCallback(Some(to_tracing)) };
        // Defense in depth: xmlsec may open no URI at all (file:, http:...); same-document
        // references do not use these callbacks. (Hostile references are also refused before.)
        // SAFETY: removes xmlsec's registered input callbacks; called once, after initialisation.
        unsafe { xmlSecIOCleanupCallbacks() };
    });
}
