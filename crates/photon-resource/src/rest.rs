//! The REST routes of every `Kind`, from its `PATH`, with the IAM rule each needs:
//!
//! - `GET|POST /api/v1/orgs/{org}/projects/{project}/<plural>[/{<plural>}/<plural>...]`: list
//!   (`?limit=&page_token=`) and create (`{"name", "spec"}` → 201),
//! - `GET|PUT|DELETE .../<plural>/{name}`: read, replace the spec (`{"spec",
//!   "resource_version"?}`) and delete (204, with everything under it).
//!
//! The action is `<service>:<plural>:<verb>`; it is checked on the outermost resource the route
//! names (`orgs/{org}/projects/{project}/<plural>/{name}`), or on the project for a top-level
//! collection, so a grant on one load balancer covers its listeners and their rules.

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{body::Bytes, Json, Router};
use photon_auth::Rule;
use serde::Deserialize;

use crate::error::ResourceError;
use crate::json;
use crate::kind::{Kind, Resources};
use crate::meta::Owner;

const PROJECT: &str = "/api/v1/orgs/{org}/projects/{project}";

/// Routes and rules of a service's kinds, collected one kind at a time, and the gRPC service
/// of the same kinds (`crate::grpc`).
pub struct Routes {
    service: &'static str,
    router: Router<Resources>,
    rules: Vec<Rule>,
    kinds: crate::grpc::Kinds,
}

impl Routes {
    pub fn new(service: &'static str) -> Self {
        Self { service, router: Router::new(), rules: Vec::new(), kinds: Default::default() }
    }

    pub fn kind<K: Kind>(mut self) -> Self {
        self.kinds.add::<K>();
        let collection = collection_path(K::PATH);
        let item = format!("{collection}/{{name}}");
        self.router = self
            .router
            .route(&collection, get(list::<K>).post(create::<K>))
            .route(&item, get(read::<K>).put(update::<K>).delete(delete::<K>));
        let plural = K::PATH[K::PATH.len() - 1];
        let outer = K::PATH[0];
        let on_collection = if K::PATH.len() == 1 {
            "orgs/{org}/projects/{project}".to_string()
        } else {
            format!("orgs/{{org}}/projects/{{project}}/{outer}/{{{outer}}}")
        };
        let on_item = if K::PATH.len() == 1 { format!("orgs/{{org}}/projects/{{project}}/{outer}/{{name}}") } else { on_collection.clone() };
        let action = |verb: &str| format!("{}:{plural}:{verb}", self.service);
        for (method, path, verb, resource) in [
            (Method::GET, &collection, "list", &on_collection),
            (Method::POST, &collection, "create", &on_collection),
            (Method::GET, &item, "get", &on_item),
            (Method::PUT, &item, "update", &on_item),
            (Method::DELETE, &item, "delete", &on_item),
        ] {
            self.rules.push(Rule::new(Some(method), path, &action(verb), resource));
        }
        self
    }

    /// The gRPC service of the kinds so far (`photon.resource.v1.Resources`), deciding each call
    /// by the rule of the REST route it mirrors, with `auth`.
    pub fn grpc(
        &self,
        resources: Resources,
        auth: std::sync::Arc<photon_auth::AuthClient>,
    ) -> photon_api::resource::v1::resources_server::ResourcesServer<crate::grpc::Grpc> {
        crate::grpc::Grpc::server(resources, self.kinds.clone(), self.rules.clone(), auth)
    }

    /// The router (bodies limited to `json::MAX_BODY_BYTES`) and the rules for photon-auth's
    /// guard (the gRPC service's calls among them, left to the service to decide).
    pub fn finish(mut self, resources: Resources) -> (Router, Vec<Rule>) {
        self.rules.push(Rule::by_handler(Some(Method::POST), crate::grpc::METHODS));
        let router = self
            .router
            .layer(DefaultBodyLimit::max(json::MAX_BODY_BYTES))
            .layer(axum::middleware::from_fn_with_state(json::MAX_BODY_BYTES, json::refuse_over))
            .with_state(resources);
        (router, self.rules)
    }
}

/// `/api/v1/orgs/{org}/projects/{project}/loadbalancers/{loadbalancers}/listeners` for
/// `["loadbalancers", "listeners"]`: each parent's name is the parameter named for its plural.
pub fn collection_path(path: &[&str]) -> String {
    nest(PROJECT.to_string(), path, |i, plural| (i + 1 < path.len()).then(|| format!("{{{plural}}}")))
}

/// `project` followed by each plural of `path` and, after it, `parent(i, plural)` if any: a
/// route parameter for `collection_path`'s templates, a parent's name for a concrete path
/// (the gRPC service's calls are decided as the REST route of that path).
pub(crate) fn nest(project: String, path: &[&str], parent: impl Fn(usize, &str) -> Option<String>) -> String {
    let mut route = project;
    for (i, plural) in path.iter().enumerate() {
        route.push('/');
        route.push_str(plural);
        if let Some(parent) = parent(i, plural) {
            route.push('/');
            route.push_str(&parent);
        }
    }
    route
}

type Result<T> = std::result::Result<T, ResourceError>;

/// The owner, the parents' names and (for an item route) the name, in path order.
fn split(params: Vec<(String, String)>, item: bool) -> Result<(Owner, Vec<String>, String)> {
    let mut values = params.into_iter().map(|(_, v)| v);
    let (Some(org), Some(project)) = (values.next(), values.next()) else {
        return Err(ResourceError::Backend("a route without org and project".into()));
    };
    let mut rest: Vec<String> = values.collect();
    let name = if item { rest.pop().unwrap_or_default() } else { String::new() };
    Ok((Owner::new(org, project), rest, name))
}

#[derive(Deserialize)]
struct ListParams {
    limit: Option<usize>,
    page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody<S> {
    name: String,
    spec: S,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateBody<S> {
    spec: S,
    resource_version: Option<i64>,
}

async fn list<K: Kind>(
    State(resources): State<Resources>,
    Path(params): Path<Vec<(String, String)>>,
    Query(query): Query<ListParams>,
) -> Result<Response> {
    let (owner, parents, _) = split(params, false)?;
    let limit = query.limit.unwrap_or(100).clamp(1, 1000);
    let listing = resources.list::<K>(&owner, &parents, query.page_token.as_deref(), limit).await?;
    Ok(Json(listing).into_response())
}

async fn create<K: Kind>(
    State(resources): State<Resources>,
    Path(params): Path<Vec<(String, String)>>,
    body: Bytes,
) -> Result<Response> {
    let (owner, parents, _) = split(params, false)?;
    let body: CreateBody<K::Spec> = json::parse(&body)?;
    let created = resources.create::<K>(&owner, &parents, &body.name, body.spec).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

async fn read<K: Kind>(State(resources): State<Resources>, Path(params): Path<Vec<(String, String)>>) -> Result<Response> {
    let (owner, parents, name) = split(params, true)?;
    Ok(Json(resources.get::<K>(&owner, &parents, &name).await?).into_response())
}

async fn update<K: Kind>(
    State(resources): State<Resources>,
    Path(params): Path<Vec<(String, String)>>,
    body: Bytes,
) -> Result<Response> {
    let (owner, parents, name) = split(params, true)?;
    let body: UpdateBody<K::Spec> = json::parse(&body)?;
    Ok(Json(resources.update::<K>(&owner, &parents, &name, body.spec, body.resource_version).await?).into_response())
}

async fn delete<K: Kind>(State(resources): State<Resources>, Path(params): Path<Vec<(String, String)>>) -> Result<Response> {
    let (owner, parents, name) = split(params, true)?;
    resources.delete::<K>(&owner, &parents, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_collections_name_each_parent_for_its_plural() {
        assert_eq!(collection_path(&["lbs"]), "/api/v1/orgs/{org}/projects/{project}/lbs");
        assert_eq!(
            collection_path(&["lbs", "listeners", "rules"]),
            "/api/v1/orgs/{org}/projects/{project}/lbs/{lbs}/listeners/{listeners}/rules"
        );
    }
}
