//! Anthropic through AWS Bedrock as the upstream: the Messages body translated to `InvokeModel`, SigV4
//! signing with the instance's AWS credentials, the event stream translated back to Anthropic SSE (see
//! `StreamTranslator`), and Bedrock's JSON errors rewritten as Anthropic errors. Pure: no I/O.

use std::time::SystemTime;

use crate::config::{AwsCredential, BedrockConfig, UpstreamUrl};
use crate::providers::bedrock::{endpoint, error_to_anthropic, sign, signing_region, translate_request_with_betas};
use crate::providers::request::Inspection;
use crate::records::Api;

use super::{Credential, Outbound, UpstreamError};

/// A Bedrock upstream: its endpoint, signing region, model mapping and AWS credentials.
pub(crate) struct Bedrock {
    cfg: BedrockConfig,
    url: UpstreamUrl,
    /// The `Host` header of `url` (also signed), rendered once rather than per request.
    host: String,
    region: String,
    /// Explicit pairs, else the AWS_* variables read at start-up.
    credentials: Vec<AwsCredential>,
}

/// The header Bedrock names its exception in (`ThrottlingException`, …).
const ERROR_TYPE_HEADER: &str = "x-amzn-errortype";

/// The exception Bedrock answers 403 with when the account may not invoke the requested model (no
/// model access granted, or an IAM policy scoped to other models): unlike an unknown key or a bad
/// signature (`UnrecognizedClientException`, `InvalidSignatureException`) it says nothing about the
/// credential's use for other models.
const MODEL_ACCESS_DENIED: &str = "AccessDeniedException";

/// True for client headers Bedrock must not get: the ones the gateway sets and signs itself, the
/// first-party API's version and beta headers (Bedrock takes both in the body), and any `x-amz-*` a
/// client sent, which would otherwise be taken as part of the signature.
pub(super) fn sets_header(name: &str) -> bool {
    name.eq_ignore_ascii_case("anthropic-version")
        || name.eq_ignore_ascii_case("anthropic-beta")
        || name.eq_ignore_ascii_case("content-type")
        || name.eq_ignore_ascii_case("accept")
        || name.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("x-amz-"))
}

/// Bedrock's error answer as an Anthropic error.
pub(super) fn rewrite_error<'h>(status: u16, header: &dyn Fn(&str) -> Option<&'h str>, body: &[u8]) -> (u16, Vec<u8>) {
    error_to_anthropic(status, body, header(ERROR_TYPE_HEADER))
}

/// True when Bedrock's error answer refuses the request's model, not the credential: a 403
/// `AccessDeniedException`, in any of the header's forms (`AccessDeniedException:http://…`,
/// `com.amazon.coral#AccessDeniedException`).
pub(super) fn refuses_model_only<'h>(status: u16, header: &dyn Fn(&str) -> Option<&'h str>) -> bool {
    status == 403
        && header(ERROR_TYPE_HEADER)
            .and_then(|t| t.split(':').next())
            .and_then(|t| t.rsplit('#').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case(MODEL_ACCESS_DENIED))
}

impl Bedrock {
    pub(super) fn new(cfg: &BedrockConfig, aws_env: Option<&AwsCredential>) -> Bedrock {
        let credentials =
            if cfg.credentials.is_empty() { aws_env.into_iter().cloned().collect() } else { cfg.credentials.clone() };
        let url = endpoint(cfg);
        let host = url.host_header();
        Bedrock { url, host, region: signing_region(cfg).to_string(), credentials, cfg: cfg.clone() }
    }

    pub(super) fn url(&self) -> &UpstreamUrl {
        &self.url
    }

    pub(super) fn host_header(&self) -> &str {
        &self.host
    }

    pub(super) fn pool_size(&self) -> usize {
        self.credentials.len()
    }

    pub(super) fn key_hint(&self, k: usize) -> Option<String> {
        self.credentials.get(k).map(|c| c.access_key_id.hint())
    }

    pub(super) fn prepare(
        &self,
        api: Option<Api>,
        body: Vec<u8>,
        inspection: Option<&Inspection>,
        anthropic_beta: &[&str],
    ) -> Result<Outbound, UpstreamError> {
        let (Some(Api::Messages), Some(inspection)) = (api, inspection) else {
            return Err(UpstreamError::RouteUnsupported);
        };
        let br = translate_request_with_betas(&self.cfg, inspection, &body, anthropic_beta)?;
        Ok(Outbound {
            path: format!("{}{}", self.url.base_path, br.path),
            body: br.body,
            model: Some(br.model_id),
            stream: br.stream,
        })
    }

    pub(super) fn added_headers(
        &self,
        out: &Outbound,
        credential: Credential,
        now: SystemTime,
    ) -> Result<Vec<(String, String)>, UpstreamError> {
        let accept = if out.stream { "application/vnd.amazon.eventstream" } else { "application/json" };
        let mut headers =
            vec![("content-type".to_string(), "application/json".to_string()), ("accept".into(), accept.into())];
        let cred = match credential {
            Credential::Key(k) => self.credentials.get(k).ok_or(UpstreamError::NoCredential)?,
            Credential::None => return Err(UpstreamError::NoCredential),
            // The client's own credential cannot sign for the gateway's AWS account; its headers were
            // dropped, and the request goes unsigned as it always did.
            Credential::Byok => return Ok(headers),
        };
        let to_sign: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let signed = sign("POST", &self.host, &out.path, &to_sign, &out.body, cred, &self.region, now)?;
        headers.extend(signed);
        Ok(headers)
    }
}
