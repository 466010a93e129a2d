//! Another service's resources, called as this service's own account: a typed client of the
//! gRPC resource API (`photon.resource.v1.Resources`) that any service serves, used where one
//! service makes or changes resources of another for its tenants (PlasmaVMC plugs a VM's NICs
//! in as PrismNET ports). Each call carries a service-account token and is authorized by the
//! other service's IAM rules like any caller's; its errors come back as `ResourceError`s.

use std::sync::Arc;
use std::time::Duration;

use photon_api::resource::v1 as pb;
use photon_api::resource::v1::resources_client::ResourcesClient;
use photon_auth::service::ServiceToken;
use tonic::transport::Channel;

use crate::error::ResourceError;
use crate::kind::{Kind, Resource};
use crate::meta::Owner;

/// How long one call may take.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone)]
pub struct Remote {
    client: ResourcesClient<Channel>,
    token: Arc<ServiceToken>,
    /// The other service's name, for errors.
    service: &'static str,
}

/// A resource of kind `K` in the other service: its project, parents and name.
#[derive(Debug, Clone, Copy)]
pub struct At<'a> {
    pub owner: &'a Owner,
    pub parents: &'a [String],
    pub name: &'a str,
}

impl Remote {
    pub fn new(service: &'static str, channel: Channel, token: Arc<ServiceToken>) -> Self {
        Self { client: ResourcesClient::new(channel), token, service }
    }

    fn collection<K: Kind>(owner: &Owner, parents: &[String]) -> pb::Collection {
        pb::Collection {
            org: owner.org.clone(),
            project: owner.project.clone(),
            kind: K::PATH.join("."),
            parents: parents.to_vec(),
        }
    }

    async fn request<T>(&self, message: T) -> Result<tonic::Request<T>, ResourceError> {
        let token = self
            .token
            .get()
            .await
            .map_err(|e| ResourceError::Unavailable(format!("no token for {} from IAM: {e}", self.service)))?;
        let mut request = tonic::Request::new(message);
        request.set_timeout(TIMEOUT);
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| ResourceError::Backend("the service token is not a header value".into()))?;
        request.metadata_mut().insert("authorization", value);
        Ok(request)
    }

    /// The other service's answer as one of ours, naming the resource.
    fn failed<K: Kind>(&self, at: At<'_>, status: tonic::Status) -> ResourceError {
        let name = at.name.to_string();
        let message = format!("{}: {}", self.service, status.message());
        match status.code() {
            tonic::Code::NotFound => ResourceError::NotFound { kind: K::NAME, name },
            tonic::Code::AlreadyExists => ResourceError::AlreadyExists { kind: K::NAME, name },
            tonic::Code::InvalidArgument => ResourceError::Invalid { field: format!("{} {name}", K::NAME), message },
            tonic::Code::FailedPrecondition | tonic::Code::Aborted => ResourceError::Precondition(message),
            tonic::Code::ResourceExhausted => ResourceError::Exhausted(message),
            tonic::Code::Unavailable | tonic::Code::DeadlineExceeded | tonic::Code::Cancelled => {
                ResourceError::Unavailable(message)
            }
            code => ResourceError::Backend(format!("{message} ({code:?})")),
        }
    }

    fn decode<S: serde::de::DeserializeOwned>(&self, json: &str) -> Result<Resource<S>, ResourceError> {
        serde_json::from_str(json).map_err(|e| ResourceError::Backend(format!("{} answered a resource we cannot read: {e}", self.service)))
    }

    fn encode<K: Kind>(spec: &K::Spec) -> Result<String, ResourceError> {
        serde_json::to_string(spec).map_err(|e| ResourceError::Backend(format!("encoding a {}: {e}", K::NAME)))
    }

    /// The resource, or `None` when it does not exist.
    pub async fn get<K: Kind>(&self, at: At<'_>) -> Result<Option<Resource<K::Spec>>, ResourceError> {
        let request = self.request(pb::ItemRequest { collection: Some(Self::collection::<K>(at.owner, at.parents)), name: at.name.into() }).await?;
        match self.client.clone().get(request).await {
            Ok(reply) => Ok(Some(self.decode(&reply.into_inner().json)?)),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(None),
            Err(status) => Err(self.failed::<K>(at, status)),
        }
    }

    pub async fn create<K: Kind>(&self, at: At<'_>, spec: &K::Spec) -> Result<Resource<K::Spec>, ResourceError> {
        let message = pb::CreateRequest {
            collection: Some(Self::collection::<K>(at.owner, at.parents)),
            name: at.name.into(),
            spec_json: Self::encode::<K>(spec)?,
        };
        let request = self.request(message).await?;
        match self.client.clone().create(request).await {
            Ok(reply) => self.decode(&reply.into_inner().json),
            Err(status) => Err(self.failed::<K>(at, status)),
        }
    }

    /// Replaces the spec, if the resource is still at `version` (when given).
    pub async fn update<K: Kind>(&self, at: At<'_>, spec: &K::Spec, version: Option<i64>) -> Result<Resource<K::Spec>, ResourceError> {
        let message = pb::UpdateRequest {
            collection: Some(Self::collection::<K>(at.owner, at.parents)),
            name: at.name.into(),
            spec_json: Self::encode::<K>(spec)?,
            resource_version: version,
        };
        let request = self.request(message).await?;
        match self.client.clone().update(request).await {
            Ok(reply) => self.decode(&reply.into_inner().json),
            Err(status) => Err(self.failed::<K>(at, status)),
        }
    }

    /// Deletes the resource; `false` when it was not there.
    pub async fn delete<K: Kind>(&self, at: At<'_>) -> Result<bool, ResourceError> {
        let request = self.request(pb::ItemRequest { collection: Some(Self::collection::<K>(at.owner, at.parents)), name: at.name.into() }).await?;
        match self.client.clone().delete(request).await {
            Ok(_) => Ok(true),
            Err(status) if status.code() == tonic::Code::NotFound => Ok(false),
            Err(status) => Err(self.failed::<K>(at, status)),
        }
    }
}
