//! Errors of the PKCS#11 token: each names the operation and the PKCS#11
//! return code (`CKR_...`), says what to do, and never carries key material
//! or the PIN.

use std::path::PathBuf;

use cryptoki::error::{Error as CkError, RvError};

/// Why a token operation failed. Every variant is a key-provider failure:
/// callers answer 503 and log it; none is a reason to fall back to a
/// software key.
#[derive(Debug, thiserror::Error)]
pub enum Pkcs11Error {
    /// The module file is missing or is not a PKCS#11 library.
    #[error(
        "loading the PKCS#11 module {path} failed ({reason}); check the module path (SoftHSM2: \
         `apt-get install softhsm2`, module /usr/lib/softhsm/libsofthsm2.so)"
    )]
    ModuleNotLoaded { path: PathBuf, reason: String },
    /// No initialised token carries the configured label.
    #[error(
        "no PKCS#11 token labelled '{label}' in {module}; tokens present: [{present}]; check the \
         token label, or create the token (SoftHSM2: `softhsm2-util --init-token --free --label \
         ...`)"
    )]
    NoSuchToken {
        label: String,
        module: PathBuf,
        present: String,
    },
    /// C_Login refused the user PIN.
    #[error(
        "C_Login to PKCS#11 token '{label}' failed: {code}: the user PIN is wrong or locked; \
         check the configured PIN (repeated failures can lock the token)"
    )]
    Login { label: String, code: String },
    /// No key with this id on the token (deleted, or another token).
    #[error(
        "{operation}: no {what} with id {key_id} on PKCS#11 token '{label}' (it was deleted, or \
         this is not the token that made it)"
    )]
    NotFound {
        operation: &'static str,
        what: &'static str,
        key_id: String,
        label: String,
    },
    /// More than one AES key carries a wrapping-key label: refuse to guess.
    #[error(
        "{count} AES keys labelled '{key_label}' on PKCS#11 token '{label}'; remove all but the \
         one your data is sealed under"
    )]
    Ambiguous {
        key_label: String,
        label: String,
        count: usize,
    },
    /// The token does not implement a mechanism Clavis needs.
    #[error("PKCS#11 token '{label}' does not support {what}: {code}")]
    Unsupported {
        what: &'static str,
        label: String,
        code: String,
    },
    /// A PKCS#11 call failed.
    #[error("{operation} on PKCS#11 token '{label}' failed: {code}")]
    Call {
        operation: &'static str,
        label: String,
        code: String,
    },
    /// The token answered with something Clavis cannot read (a public key
    /// point of the wrong length, a short sealed blob).
    #[error("{operation} on PKCS#11 token '{label}': {what}")]
    Malformed {
        operation: &'static str,
        label: String,
        what: &'static str,
    },
    /// AES-GCM refused the sealed data: wrong AAD, wrong key or tampering.
    #[error(
        "C_Decrypt with wrapping key '{key_label}' on PKCS#11 token '{label}': the data does not \
         authenticate ({code}): wrong associated data, another key, or tampered ciphertext"
    )]
    Unseal {
        key_label: String,
        label: String,
        code: String,
    },
}

impl Pkcs11Error {
    /// The PKCS#11 return code this error carries, as `CKR_...`, if any.
    pub fn return_code(&self) -> Option<&str> {
        match self {
            Self::Login { code, .. }
            | Self::Unsupported { code, .. }
            | Self::Call { code, .. }
            | Self::Unseal { code, .. } => Some(code),
            _ => None,
        }
    }

    /// A failed call, named after the operation and the token.
    pub(super) fn call(operation: &'static str, label: &str, err: &CkError) -> Self {
        Self::Call {
            operation,
            label: label.to_owned(),
            code: code_of(err),
        }
    }
}

/// `CKR_...` for a cryptoki error (the PKCS#11 return value when there is
/// one; otherwise the wrapper's own short reason).
pub(super) fn code_of(err: &CkError) -> String {
    match err {
        CkError::Pkcs11(rv, _) => rv_name(rv),
        CkError::LibraryLoading(e) => format!("library not loaded ({e})"),
        other => format!("{other}"),
    }
}

/// The return value of a failed call, when the token gave one.
pub(super) fn rv_of(err: &CkError) -> Option<RvError> {
    match err {
        CkError::Pkcs11(rv, _) => Some(*rv),
        _ => None,
    }
}

/// `RvError::DeviceRemoved` -> `CKR_DEVICE_REMOVED` (cryptoki's variant
/// names are the constants' names in CamelCase).
pub(super) fn rv_name(rv: &RvError) -> String {
    match rv {
        RvError::VendorDefined(v) => format!("CKR_VENDOR_DEFINED(0x{v:08x})"),
        RvError::UnknownErrorCode(v) => format!("CKR_0x{v:08x}"),
        other => {
            let camel = format!("{other:?}");
            let mut out = String::from("CKR");
            for c in camel.chars() {
                if c.is_ascii_uppercase() {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_codes_read_as_the_pkcs11_constants() {
        assert_eq!(rv_name(&RvError::DeviceRemoved), "CKR_DEVICE_REMOVED");
        assert_eq!(rv_name(&RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            rv_name(&RvError::AttributeSensitive),
            "CKR_ATTRIBUTE_SENSITIVE"
        );
        assert_eq!(
            rv_name(&RvError::CryptokiNotInitialized),
            "CKR_CRYPTOKI_NOT_INITIALIZED"
        );
        assert_eq!(
            rv_name(&RvError::VendorDefined(0x8000_0001)),
            "CKR_VENDOR_DEFINED(0x80000001)"
        );
    }
}
