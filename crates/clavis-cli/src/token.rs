//! `clavis token get`: a client-credentials token (RFC 6749 §4.4) for any
//! scope, as the profile's application, optionally with its JWT header and
//! claims decoded (without verification: for debugging only).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::Value;

use crate::client::Connection;
use crate::error::Error;
use crate::output::{self, OutputFormat};
use crate::Ctx;

/// `clavis token ...`
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Acquire an access token as the profile's application and print it.
    ///
    /// Table output prints the bare token (for `Authorization: Bearer $(clavis token get ...)`);
    /// JSON output prints the whole token response.
    Get {
        /// The scope: the resource's identifier URI or appId followed by /.default,
        /// e.g. api://orders/.default.
        #[arg(long, value_name = "SCOPE")]
        scope: String,
        /// Also print the JWT's header and claims, decoded WITHOUT verifying the signature.
        #[arg(long)]
        decode: bool,
    },
}

pub async fn run(ctx: &Ctx, cmd: TokenCommand) -> Result<(), Error> {
    let TokenCommand::Get { scope, decode } = cmd;
    let profile = ctx.config()?.load(&ctx.global.profile)?;
    let settings = &profile.settings;
    let conn = Connection::new(settings.authority.clone(), settings.ca_file.as_deref())?;
    let token = conn
        .token(settings.client_id, &profile.secret, &scope)
        .await?;
    let decoded = if decode {
        Some(decode_jwt(token.access_token.expose())?)
    } else {
        None
    };
    let text = match (ctx.global.output, decoded) {
        (OutputFormat::Json, None) => output::json(&token.raw),
        (OutputFormat::Json, Some((header, claims))) => {
            let mut raw = token.raw;
            raw["header"] = header;
            raw["claims"] = claims;
            output::json(&raw)
        }
        (OutputFormat::Table, None) => format!("{}\n", token.access_token.expose()),
        (OutputFormat::Table, Some((header, claims))) => format!(
            "{}\n\nheader (not verified):\n{}\nclaims (not verified):\n{}",
            token.access_token.expose(),
            output::json(&header),
            output::json(&claims)
        ),
    };
    output::emit(&text);
    Ok(())
}

/// The header and claims of a compact JWS, decoded but NOT verified.
pub fn decode_jwt(token: &str) -> Result<(Value, Value), Error> {
    let not_jwt = || Error::new("the access token is not a JWT (header.payload.signature)");
    let mut parts = token.split('.');
    let (Some(header), Some(claims), Some(_signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(not_jwt());
    };
    let part = |text: &str| -> Result<Value, Error> {
        let bytes = URL_SAFE_NO_PAD
            .decode(text.trim_end_matches('='))
            .map_err(|_| not_jwt())?;
        serde_json::from_slice(&bytes).map_err(|_| not_jwt())
    };
    Ok((part(header)?, part(claims)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decodes_header_and_claims() {
        let enc = |v: Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap());
        let token = format!(
            "{}.{}.c2ln",
            enc(json!({"alg":"ES256","kid":"k1"})),
            enc(json!({"aud":"a","roles":["Orders.Read"]}))
        );
        let (header, claims) = decode_jwt(&token).unwrap();
        assert_eq!(header["kid"], "k1");
        assert_eq!(claims["roles"], json!(["Orders.Read"]));
        assert!(decode_jwt("opaque-token").is_err());
        assert!(decode_jwt("a.b.c.d").is_err());
        assert!(decode_jwt("!!.??.x").is_err());
    }
}
