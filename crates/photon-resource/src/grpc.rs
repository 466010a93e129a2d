//! The tenant resource API as gRPC (`photon.resource.v1.Resources`), beside the REST routes of
//! the same kinds (`rest::Routes` collects both): a call names its collection (project, kind,
//! parents) and item, is mapped to the REST route it mirrors, authorized by that route's rule —
//! the same action on the same resource, through `photon-auth` — and run by the same store
//! operations, with specs and resources as the REST API's JSON. photon-auth's guard lets these
//! calls through ([`photon_auth::Rule::by_handler`]) because only the handler, having read the
//! message, knows which route a call mirrors.

use std::collections::HashMap;
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;

use axum::http::Method;
use photon_api::resource::v1 as pb;
use photon_api::resource::v1::resources_server::{Resources as ResourcesApi, ResourcesServer};
use photon_auth::rules::{need, Need};
use photon_auth::{AuthClient, Rule};
use tonic::{Request, Response, Status};

use crate::error::{FieldError, ResourceError};
use crate::json;
use crate::kind::{check_name, Kind, Resources};
use crate::meta::Owner;

/// The gRPC methods' paths, for the guard.
pub const METHODS: &str = "/photon.resource.v1.Resources/{method}";

type Reply<'a> = Pin<Box<dyn Future<Output = Result<String, ResourceError>> + Send + 'a>>;

/// One kind's operations with JSON in and out.
trait KindOps: Send + Sync {
    fn path(&self) -> &'static [&'static str];
    fn create<'a>(&self, r: &'a Resources, owner: &'a Owner, parents: &'a [String], name: &'a str, spec: &'a [u8]) -> Reply<'a>;
    fn get<'a>(&self, r: &'a Resources, owner: &'a Owner, parents: &'a [String], name: &'a str) -> Reply<'a>;
    fn list<'a>(&self, r: &'a Resources, owner: &'a Owner, parents: &'a [String], token: Option<&'a str>, limit: usize) -> Reply<'a>;
    fn update<'a>(
        &self,
        r: &'a Resources,
        owner: &'a Owner,
        parents: &'a [String],
        name: &'a str,
        spec: &'a [u8],
        version: Option<i64>,
    ) -> Reply<'a>;
    fn delete<'a>(&self, r: &'a Resources, owner: &'a Owner, parents: &'a [String], name: &'a str) -> Reply<'a>;
}

struct Ops<K>(PhantomData<K>);

fn to_json(value: &impl serde::Serialize) -> Result<String, ResourceError> {
    serde_json::to_string(value).map_err(|e| ResourceError::Backend(format!("encoding a reply: {e}")))
}

impl<K: Kind> KindOps for Ops<K> {
    fn path(&self) -> &'static [&'static str] {
        K::PATH
    }

    fn create<'a>(&self, r: &'a Resources, owner: &'a Owner, parents: &'a [String], name: &'a str, spec: &'a [u8]) -> Reply<'a> {
        Box::pin(async move {
            let spec: K::Spec = json::parse_as(spec, "spec", "spec_json")?;
            to_json(&r.create::<K>(owner, parents, name, spec).await?)
        })
    }

    fn get<'a>(&self, r: &'a Resources, owner: &'a Owner, parents: &'a [String], name: &'a str) -> Reply<'a> {
        Box::pin(async move { to_json(&r.get::<K>(owner, parents, name).await?) })
    }

    fn list<'a>(&self, r: &'a Resources, owner: &'a Owner, parents: &'a [String], token: Option<&'a str>, limit: usize) -> Reply<'a> {
        Box::pin(async move { to_json(&r.list::<K>(owner, parents, token, limit).await?) })
    }

    fn update<'a>(
        &self,
        r: &'a Resources,
        owner: &'a Owner,
        parents: &'a [String],
        name: &'a str,
        spec: &'a [u8],
        version: Option<i64>,
    ) -> Reply<'a> {
        Box::pin(async move {
            let spec: K::Spec = json::parse_as(spec, "spec", "spec_json")?;
            to_json(&r.update::<K>(owner, parents, name, spec, version).await?)
        })
    }

    fn delete<'a>(&self, r: &'a Resources, owner: &'a Owner, parents: &'a [String], name: &'a str) -> Reply<'a> {
        Box::pin(async move {
            r.delete::<K>(owner, parents, name).await?;
            Ok(String::new())
        })
    }
}

/// Kinds by their dotted path (`loadbalancers.listeners`), collected by `rest::Routes`.
#[derive(Default, Clone)]
pub(crate) struct Kinds(HashMap<String, Arc<dyn KindOps>>);

impl Kinds {
    pub(crate) fn add<K: Kind>(&mut self) {
        self.0.insert(K::PATH.join("."), Arc::new(Ops::<K>(PhantomData)));
    }
}

/// The service; build it with [`crate::rest::Routes::grpc`].
#[derive(Clone)]
pub struct Grpc {
    resources: Resources,
    kinds: Kinds,
    /// The REST routes' rules, which decide for the calls that mirror them.
    rules: Arc<Vec<Rule>>,
    auth: Arc<AuthClient>,
}

impl Grpc {
    pub(crate) fn server(resources: Resources, kinds: Kinds, rules: Vec<Rule>, auth: Arc<AuthClient>) -> ResourcesServer<Self> {
        ResourcesServer::new(Self { resources, kinds, rules: Arc::new(rules), auth })
    }

    /// The kind a call names, its owner and parents, checked, and the path of the REST route
    /// it mirrors (the item's when `name` is given).
    fn locate(&self, collection: Option<&pb::Collection>, name: Option<&str>) -> Result<(Arc<dyn KindOps>, Owner, String), Status> {
        let c = collection.ok_or_else(|| Status::invalid_argument("collection: required (org, project, kind, parents)"))?;
        let ops = self.kinds.0.get(&c.kind).cloned().ok_or_else(|| {
            let mut known: Vec<&String> = self.kinds.0.keys().collect();
            known.sort();
            Status::invalid_argument(format!("collection.kind: {:?} is not a kind here (one of {known:?})", c.kind))
        })?;
        let path = ops.path();
        if c.parents.len() + 1 != path.len() {
            let wanted = path[..path.len() - 1].join(", ");
            return Err(Status::invalid_argument(format!(
                "collection.parents: {} takes {} parent name(s) ({wanted}), not {}",
                c.kind,
                path.len() - 1,
                c.parents.len()
            )));
        }
        for (field, value) in [("collection.org", &c.org), ("collection.project", &c.project)] {
            let plain = !value.is_empty() && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
            if !plain {
                return Err(Status::invalid_argument(format!("{field}: {value:?} is not a valid name")));
            }
        }
        let invalid = |e: FieldError| Status::from(ResourceError::from(e));
        for (i, parent) in c.parents.iter().enumerate() {
            check_name(&format!("collection.parents[{i}]"), parent).map_err(invalid)?;
        }
        if let Some(name) = name {
            check_name("name", name).map_err(invalid)?;
        }
        let project = format!("/api/v1/orgs/{}/projects/{}", c.org, c.project);
        let mut rest = crate::rest::nest(project, path, |i, _| c.parents.get(i).cloned());
        if let Some(name) = name {
            rest.push('/');
            rest.push_str(name);
        }
        Ok((ops, Owner::new(c.org.clone(), c.project.clone()), rest))
    }

    /// Decides a call as the REST route `method path` would be decided.
    async fn authorize<T>(&self, request: &Request<T>, method: Method, path: &str) -> Result<(), Status> {
        let headers = request.metadata().clone().into_headers();
        match need(&self.rules, &method, path, &headers) {
            Need::Nothing => Ok(()),
            Need::Action { action, resource } => {
                let token = photon_auth::guard::bearer(&headers).map_err(|e| e.status())?;
                self.auth.authorize(&token, &action, &resource).await.map(|_| ()).map_err(|e| e.status())
            }
            Need::Undeclared(why) => Err(Status::permission_denied(why)),
        }
    }
}

fn limit(asked: u32) -> usize {
    if asked == 0 { 100 } else { (asked as usize).clamp(1, 1000) }
}

#[tonic::async_trait]
impl ResourcesApi for Grpc {
    async fn create(&self, request: Request<pb::CreateRequest>) -> Result<Response<pb::ResourceReply>, Status> {
        let (ops, owner, path) = self.locate(request.get_ref().collection.as_ref(), None)?;
        self.authorize(&request, Method::POST, &path).await?;
        let q = request.into_inner();
        check_name("name", &q.name).map_err(|e| Status::from(ResourceError::from(e)))?;
        let parents = q.collection.map(|c| c.parents).unwrap_or_default();
        let json = ops.create(&self.resources, &owner, &parents, &q.name, q.spec_json.as_bytes()).await?;
        Ok(Response::new(pb::ResourceReply { json }))
    }

    async fn get(&self, request: Request<pb::ItemRequest>) -> Result<Response<pb::ResourceReply>, Status> {
        let (ops, owner, path) = self.locate(request.get_ref().collection.as_ref(), Some(&request.get_ref().name))?;
        self.authorize(&request, Method::GET, &path).await?;
        let q = request.into_inner();
        let parents = q.collection.map(|c| c.parents).unwrap_or_default();
        let json = ops.get(&self.resources, &owner, &parents, &q.name).await?;
        Ok(Response::new(pb::ResourceReply { json }))
    }

    async fn list(&self, request: Request<pb::ListRequest>) -> Result<Response<pb::ListReply>, Status> {
        let (ops, owner, path) = self.locate(request.get_ref().collection.as_ref(), None)?;
        self.authorize(&request, Method::GET, &path).await?;
        let q = request.into_inner();
        let parents = q.collection.map(|c| c.parents).unwrap_or_default();
        let token = Some(q.page_token.as_str()).filter(|t| !t.is_empty());
        let json = ops.list(&self.resources, &owner, &parents, token, limit(q.limit)).await?;
        Ok(Response::new(pb::ListReply { json }))
    }

    async fn update(&self, request: Request<pb::UpdateRequest>) -> Result<Response<pb::ResourceReply>, Status> {
        let (ops, owner, path) = self.locate(request.get_ref().collection.as_ref(), Some(&request.get_ref().name))?;
        self.authorize(&request, Method::PUT, &path).await?;
        let q = request.into_inner();
        let parents = q.collection.map(|c| c.parents).unwrap_or_default();
        let json = ops.update(&self.resources, &owner, &parents, &q.name, q.spec_json.as_bytes(), q.resource_version).await?;
        Ok(Response::new(pb::ResourceReply { json }))
    }

    async fn delete(&self, request: Request<pb::ItemRequest>) -> Result<Response<pb::DeleteReply>, Status> {
        let (ops, owner, path) = self.locate(request.get_ref().collection.as_ref(), Some(&request.get_ref().name))?;
        self.authorize(&request, Method::DELETE, &path).await?;
        let q = request.into_inner();
        let parents = q.collection.map(|c| c.parents).unwrap_or_default();
        ops.delete(&self.resources, &owner, &parents, &q.name).await?;
        Ok(Response::new(pb::DeleteReply {}))
    }
}
