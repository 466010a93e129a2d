//! Tokens: a standard JWT library verifies ours against the JWKS endpoint; OIDC discovery;
//! refresh, expiry, revocation and signing-key rotation; the first administrator's bootstrap.

mod common;

use std::time::Duration;

use common::{bearer, Env, ADMIN_PASSWORD};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use photon_api::iam::v1 as pb;

fn jwks(env: &Env) -> JwkSet {
    let (code, body) = env.iam.curl("GET", "/.well-known/jwks.json", None, &[]);
    assert_eq!(code, 200, "{body}");
    serde_json::from_value(body).expect("a JWKS document")
}

/// What the `jsonwebtoken` crate (not our code) makes of a token, given our JWKS.
fn verify_with_library(
    set: &JwkSet,
    token: &str,
    issuer: &str,
) -> Result<serde_json::Value, jsonwebtoken::errors::Error> {
    let header = jsonwebtoken::decode_header(token)?;
    let jwk = set.find(header.kid.as_deref().unwrap_or_default()).expect("the token's key is in the JWKS");
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_audience(&["photoncloud"]);
    validation.set_issuer(&[issuer]);
    jsonwebtoken::decode::<serde_json::Value>(token, &DecodingKey::from_jwk(jwk)?, &validation).map(|d| d.claims)
}

#[tokio::test]
async fn a_standard_jwt_library_verifies_our_tokens_through_jwks_and_discovery() {
    let env = Env::start(&[]).await;
    let (code, discovery) = env.iam.curl("GET", "/.well-known/openid-configuration", None, &[]);
    assert_eq!(code, 200, "{discovery}");
    let issuer = discovery["issuer"].as_str().unwrap().to_string();
    assert_eq!(discovery["jwks_uri"], format!("{issuer}/.well-known/jwks.json"));
    assert_eq!(discovery["id_token_signing_alg_values_supported"][0], "EdDSA");

    let tokens = env.login("admin", ADMIN_PASSWORD).await.unwrap();
    let claims = verify_with_library(&jwks(&env), &tokens.access_token, &issuer).expect("jsonwebtoken accepts it");
    assert_eq!(claims["sub"], "user:admin");
    assert_eq!(claims["typ"], "access");
    // A token whose payload was changed fails the library's signature check.
    let mut parts: Vec<String> = tokens.access_token.split('.').map(String::from).collect();
    use base64::Engine;
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let payload = String::from_utf8(engine.decode(&parts[1]).unwrap()).unwrap().replace("user:admin", "user:mallory");
    parts[1] = engine.encode(payload);
    assert!(verify_with_library(&jwks(&env), &parts.join("."), &issuer).is_err());
    let refused = env.tokens().validate_token(pb::ValidateTokenRequest { token: parts.join(".") }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);

    // The REST token endpoint and whoami.
    let (code, body) = env.iam.curl(
        "POST",
        "/api/v1/auth/token",
        Some(&format!(r#"{{"user":"admin","password":"{ADMIN_PASSWORD}"}}"#)),
        &[],
    );
    assert_eq!(code, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let (code, me) = env.iam.curl("GET", "/api/v1/auth/whoami", None, &[&format!("authorization: Bearer {token}")]);
    assert_eq!((code, me["principal"].as_str()), (200, Some("user:admin")), "{me}");
    let (code, body) =
        env.iam.curl("POST", "/api/v1/auth/token", Some(r#"{"user":"admin","password":"wrong-password!"}"#), &[]);
    assert_eq!((code, body["error"]["code"].as_str()), (401, Some("unauthenticated")), "{body}");
    let (code, body) = env.iam.curl("POST", "/api/v1/auth/token", Some(r#"{"user":"admin"}"#), &[]);
    assert_eq!(code, 400, "{body}");
}

#[tokio::test]
async fn refresh_and_expiry() {
    let env = Env::start(&[("IAM_TOKENS_ACCESS_TTL_SECONDS", "2")]).await;
    let first = env.login("admin", ADMIN_PASSWORD).await.unwrap();
    let validate = |token: String| {
        let mut tokens = env.tokens();
        async move { tokens.validate_token(pb::ValidateTokenRequest { token }).await }
    };
    assert!(validate(first.access_token.clone()).await.is_ok());

    // Expiry: after its two seconds the token is refused; the refresh token gets a new one.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    let expired = validate(first.access_token.clone()).await.unwrap_err();
    assert_eq!(expired.code(), tonic::Code::Unauthenticated);
    assert!(expired.message().contains("expired"), "{}", expired.message());
    let refreshed = env
        .tokens()
        .refresh_token(pb::RefreshTokenRequest { refresh_token: first.refresh_token.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(validate(refreshed.access_token.clone()).await.is_ok());
    // A refresh token does not authorize calls.
    let denied = env.admin().list_orgs(bearer(&first.refresh_token, pb::ListOrgsRequest {})).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
}

// With the default lifetime: a two-second token (its expiry is in whole seconds, so it may
// live only one) can expire between the steps below on a busy machine.
#[tokio::test]
async fn revocation_and_key_rotation() {
    let env = Env::start(&[]).await;
    let validate = |token: String| {
        let mut tokens = env.tokens();
        async move { tokens.validate_token(pb::ValidateTokenRequest { token }).await }
    };

    // Rotation: tokens signed by the old key stay valid; new ones use the new key.
    let before = env.login("admin", ADMIN_PASSWORD).await.unwrap().access_token;
    let rotated =
        env.admin().rotate_signing_key(bearer(&before, pb::RotateSigningKeyRequest {})).await.unwrap().into_inner();
    let after = env.login("admin", ADMIN_PASSWORD).await.unwrap().access_token;
    assert_eq!(jsonwebtoken::decode_header(&after).unwrap().kid.as_deref(), Some(rotated.kid.as_str()));
    assert_ne!(jsonwebtoken::decode_header(&before).unwrap().kid, jsonwebtoken::decode_header(&after).unwrap().kid);
    assert!(validate(before.clone()).await.is_ok(), "the old key verifies during the overlap");
    assert!(validate(after.clone()).await.is_ok());
    assert_eq!(jwks(&env).keys.len(), 2, "both keys are published");

    // Revocation: the token stops working at once, here and for calls.
    env.tokens().revoke_token(bearer(&after, pb::RevokeTokenRequest { token: after.clone() })).await.unwrap();
    let revoked = validate(after.clone()).await.unwrap_err();
    assert!(revoked.message().contains("revoked"), "{}", revoked.message());
    let denied = env.admin().list_orgs(bearer(&after, pb::ListOrgsRequest {})).await.unwrap_err();
    assert_eq!(denied.code(), tonic::Code::Unauthenticated);
    assert!(validate(before).await.is_ok(), "revoking one token leaves the others");
}

#[tokio::test]
async fn the_first_administrator_is_created_once() {
    let mut env = Env::start(&[]).await;
    assert!(env.login("admin", ADMIN_PASSWORD).await.is_ok());
    // Restarting with another password file changes nothing.
    std::fs::write(env.password_file.path(), "a-different-password").unwrap();
    env.iam.process.kill9();
    env.iam.process.start();
    env.iam.wait_healthy(Duration::from_secs(30)).await;
    assert!(env.login("admin", ADMIN_PASSWORD).await.is_ok());
    assert_eq!(env.login("admin", "a-different-password").await.unwrap_err().code(), tonic::Code::Unauthenticated);
    assert!(env.iam.process.logs().contains("the first administrator exists"));
}
