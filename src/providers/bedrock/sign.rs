//! SigV4 signing of Bedrock requests (service `bedrock`) with the `aws-sigv4` crate, and reading AWS
//! credentials from the standard environment variables. Pure: the clock and the environment are passed
//! in. Never logs or returns a secret except inside the `authorization`/`x-amz-security-token` headers
//! it is asked to produce.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;

use crate::config::{AwsCredential, Secret};

/// The SigV4 signing name of the Bedrock runtime endpoints.
pub(crate) const SERVICE: &str = "bedrock";

/// The signer refused the request (bad header value, unparsable URI). A gateway-side failure: the
/// client's request was fine. The text comes from `aws-sigv4` and never includes the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("SigV4 signing failed: {0}")]
pub(crate) struct SignError(String);

/// Signs one request and returns the headers to add: `x-amz-date`, `authorization`, and
/// `x-amz-security-token` when the credential has a session token.
///
/// `path` is the request target exactly as sent (already percent-encoded once, e.g. `…v1%3A0…`; the
/// signer encodes it again for the canonical request, as every AWS service but S3 expects). `headers`
/// are the headers that will be sent unchanged and should be signed, e.g. `content-type` and `accept`;
/// `host` is taken from `url_host` (include the port when it is not the default). Leave out hop-by-hop
/// headers a proxy might change. The body is hashed into the signature (no `x-amz-content-sha256`).
#[allow(clippy::too_many_arguments)] // the contract the relay calls; a struct would only rename them
pub(crate) fn sign(
    method: &str,
    url_host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    cred: &AwsCredential,
    region: &str,
    now: SystemTime,
) -> Result<Vec<(String, String)>, SignError> {
    sign_for_service(SERVICE, method, url_host, path, headers, body, cred, region, now)
}

/// [`sign`] with any signing name; lets tests check the AWS published test vectors (service `service`).
#[allow(clippy::too_many_arguments)]
pub(crate) fn sign_for_service(
    service: &str,
    method: &str,
    url_host: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    cred: &AwsCredential,
    region: &str,
    now: SystemTime,
) -> Result<Vec<(String, String)>, SignError> {
    let identity: Identity = Credentials::new(
        cred.access_key_id.expose(),
        cred.secret_access_key.expose(),
        cred.session_token.as_ref().map(|t| t.expose().to_string()),
        None,
        "aibridged",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(now)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SignError(e.to_string()))?
        .into();
    let uri = format!("https://{url_host}{path}");
    let request = SignableRequest::new(
        method,
        uri,
        headers.iter().copied().filter(|(n, _)| !n.eq_ignore_ascii_case("host")),
        SignableBody::Bytes(body),
    )
    .map_err(|e| SignError(e.to_string()))?;
    let (instructions, _signature) =
        aws_sigv4::http_request::sign(request, &params).map_err(|e| SignError(e.to_string()))?.into_parts();
    let (out_headers, _params) = instructions.into_parts();
    Ok(out_headers.into_iter().map(|h| (h.name().to_string(), h.value().to_string())).collect())
}

/// The credential from `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` (and `AWS_SESSION_TOKEN` when set),
/// used when a Bedrock instance configures no access key. `None` unless both halves are non-empty.
pub(crate) fn credentials_from_env(env: &dyn Fn(&str) -> Option<String>) -> Option<AwsCredential> {
    let non_empty = |k: &str| env(k).filter(|v| !v.is_empty());
    Some(AwsCredential {
        access_key_id: Secret::new(non_empty("AWS_ACCESS_KEY_ID")?),
        secret_access_key: Secret::new(non_empty("AWS_SECRET_ACCESS_KEY")?),
        session_token: non_empty("AWS_SESSION_TOKEN").map(Secret::new),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn example_cred(token: Option<&str>) -> AwsCredential {
        // The published example credential of the AWS SigV4 test suite.
        AwsCredential {
            access_key_id: Secret::new("AKIDEXAMPLE"),
            secret_access_key: Secret::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"),
            session_token: token.map(Secret::new),
        }
    }

    /// 2015-08-30T12:36:00Z, the test suite's clock.
    fn suite_time() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_440_938_160)
    }

    fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    #[test]
    fn aws_test_suite_get_vanilla() {
        let h = sign_for_service(
            "service",
            "GET",
            "example.amazonaws.com",
            "/",
            &[],
            b"",
            &example_cred(None),
            "us-east-1",
            suite_time(),
        )
        .unwrap();
        assert_eq!(header(&h, "x-amz-date"), Some("20150830T123600Z"));
        assert_eq!(
            header(&h, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date, \
                 Signature=5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31"
            )
        );
        assert_eq!(header(&h, "x-amz-security-token"), None);
    }

    #[test]
    fn aws_test_suite_get_vanilla_with_session_token() {
        let token = "6e86291e8372ff2a2260956d9b8aae1d763fbf315fa00fa31553b73ebf194267";
        let h = sign_for_service(
            "service",
            "GET",
            "example.amazonaws.com",
            "/",
            &[],
            b"",
            &example_cred(Some(token)),
            "us-east-1",
            suite_time(),
        )
        .unwrap();
        assert_eq!(header(&h, "x-amz-security-token"), Some(token));
        assert_eq!(
            header(&h, "authorization"),
            Some(
                "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/aws4_request, \
                 SignedHeaders=host;x-amz-date;x-amz-security-token, \
                 Signature=07ec1639c89043aa0e3e2de82b96708f198cceab042d4a97044c66dd9f74e7f8"
            )
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
        let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
        ring::hmac::sign(&k, data).as_ref().to_vec()
    }

    fn sha256_hex(data: &[u8]) -> String {
        hex(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
    }

    /// The SigV4 algorithm written out by hand (AWS "Create a signed AWS API request"), for a Bedrock
    /// POST whose model id needs encoding: the canonical URI is the sent path encoded once more.
    #[test]
    fn bedrock_post_matches_an_independent_computation() {
        let cred = example_cred(None);
        let body = br#"{"anthropic_version":"bedrock-2023-05-31","max_tokens":10,"messages":[]}"#;
        let path = "/model/global.anthropic.claude-sonnet-4-5-20250929-v1%3A0/invoke";
        let host = "bedrock-runtime.us-west-2.amazonaws.com";
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_000_000); // 2025-11-24T16:00:00Z
        let h = sign(
            "POST",
            host,
            path,
            &[("content-type", "application/json"), ("accept", "application/json")],
            body,
            &cred,
            "us-west-2",
            now,
        )
        .unwrap();

        let amz_date = "20251124T160000Z";
        assert_eq!(header(&h, "x-amz-date"), Some(amz_date));
        let canonical = format!(
            "POST\n/model/global.anthropic.claude-sonnet-4-5-20250929-v1%253A0/invoke\n\n\
             accept:application/json\ncontent-type:application/json\nhost:{host}\nx-amz-date:{amz_date}\n\n\
             accept;content-type;host;x-amz-date\n{}",
            sha256_hex(body)
        );
        let scope = "20251124/us-west-2/bedrock/aws4_request";
        let string_to_sign = format!("AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{}", sha256_hex(canonical.as_bytes()));
        let k_date = hmac(b"AWS4wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", b"20251124");
        let k_region = hmac(&k_date, b"us-west-2");
        let k_service = hmac(&k_region, b"bedrock");
        let k_signing = hmac(&k_service, b"aws4_request");
        let signature = hex(&hmac(&k_signing, string_to_sign.as_bytes()));
        let want = format!(
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/{scope}, SignedHeaders=accept;content-type;host;x-amz-date, Signature={signature}"
        );
        assert_eq!(header(&h, "authorization"), Some(want.as_str()));

        // Deterministic for a fixed clock; a different body changes the signature.
        let again = sign(
            "POST",
            host,
            path,
            &[("content-type", "application/json"), ("accept", "application/json")],
            body,
            &cred,
            "us-west-2",
            now,
        )
        .unwrap();
        assert_eq!(h, again);
        let other = sign(
            "POST",
            host,
            path,
            &[("content-type", "application/json"), ("accept", "application/json")],
            b"{}",
            &cred,
            "us-west-2",
            now,
        )
        .unwrap();
        assert_ne!(header(&h, "authorization"), header(&other, "authorization"));
    }

    #[test]
    fn a_passed_host_header_is_not_signed_twice() {
        let with = sign(
            "POST",
            "h.example",
            "/x",
            &[("Host", "h.example")],
            b"",
            &example_cred(None),
            "us-east-1",
            suite_time(),
        )
        .unwrap();
        let without =
            sign("POST", "h.example", "/x", &[], b"", &example_cred(None), "us-east-1", suite_time()).unwrap();
        assert_eq!(with, without);
        assert!(header(&with, "authorization").unwrap().contains("SignedHeaders=host;x-amz-date,"));
    }

    #[test]
    fn bad_header_value_is_a_typed_error_without_secrets() {
        let err =
            sign("POST", "h.example", "/x", &[("x-bad", "a\nb")], b"", &example_cred(None), "us-east-1", suite_time())
                .unwrap_err();
        assert!(err.to_string().starts_with("SigV4 signing failed: "));
        assert!(!err.to_string().contains("wJalrXUtnFEMI"));
    }

    #[test]
    fn credentials_come_from_the_environment() {
        let env = |k: &str| match k {
            "AWS_ACCESS_KEY_ID" => Some("AKIA1".to_string()),
            "AWS_SECRET_ACCESS_KEY" => Some("s3cr3t".to_string()),
            "AWS_SESSION_TOKEN" => Some(String::new()),
            _ => None,
        };
        let c = credentials_from_env(&env).unwrap();
        assert_eq!(c.access_key_id.expose(), "AKIA1");
        assert_eq!(c.secret_access_key.expose(), "s3cr3t");
        assert!(c.session_token.is_none());

        let with_token = |k: &str| match k {
            "AWS_SESSION_TOKEN" => Some("tok".to_string()),
            other => env(other),
        };
        assert_eq!(credentials_from_env(&with_token).unwrap().session_token.unwrap().expose(), "tok");

        let no_secret = |k: &str| {
            if k == "AWS_ACCESS_KEY_ID" {
                Some("AKIA1".to_string())
            } else {
                None
            }
        };
        assert!(credentials_from_env(&no_secret).is_none());
    }
}
