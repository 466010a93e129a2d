//! FlashDNS's zone API as the registrar uses it: calls in the platform's project, as
//! PrismNET's service account (a token from IAM, renewed before it expires).

use std::sync::Arc;
use std::time::Duration;

use photon_api::flashdns::v1 as pb;
use photon_api::flashdns::v1::zones_client::ZonesClient;
use photon_auth::service::ServiceToken;
use tonic::transport::Channel;

use crate::error::{PrismnetError, Result};

/// The project platform services' own resources live in (IAM's bootstrap makes it).
pub const PLATFORM: (&str, &str) = ("platform", "services");

#[derive(Clone)]
pub struct FlashDns {
    zones: ZonesClient<Channel>,
    token: Arc<ServiceToken>,
}

/// A record set as FlashDNS holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Set {
    pub name: String,
    pub rtype: String,
    pub ttl: u32,
    pub data: Vec<String>,
}

fn failed(what: String, status: tonic::Status) -> PrismnetError {
    PrismnetError::Dns { what, message: format!("{:?}: {}", status.code(), status.message()) }
}

impl FlashDns {
    pub fn new(channel: Channel, token: Arc<ServiceToken>) -> Self {
        Self { zones: ZonesClient::new(channel), token }
    }

    async fn request<T>(&self, message: T) -> Result<tonic::Request<T>> {
        let token = self.token.get().await.map_err(|e| PrismnetError::Dns { what: "a token for FlashDNS".into(), message: e.to_string() })?;
        let mut request = tonic::Request::new(message);
        request.set_timeout(Duration::from_secs(5));
        let metadata = request.metadata_mut();
        let value = |text: &str| text.parse().map_err(|_| PrismnetError::Dns { what: "a request header".into(), message: format!("{text:?} is not a header value") });
        metadata.insert("authorization", value(&format!("Bearer {token}"))?);
        metadata.insert("x-photon-org", value(PLATFORM.0)?);
        metadata.insert("x-photon-project", value(PLATFORM.1)?);
        Ok(request)
    }

    /// Creates `zone` in the platform's project unless it is there already.
    pub async fn ensure_zone(&self, zone: &str, ttl: u32) -> Result<()> {
        let get = self.request(pb::ZoneRef { zone: zone.into() }).await?;
        match self.zones.clone().get_zone(get).await {
            Ok(_) => return Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => {}
            Err(s) => return Err(failed(format!("reading zone {zone}"), s)),
        }
        let create = self.request(pb::CreateZoneRequest { name: zone.into(), ttl, nameservers: Vec::new() }).await?;
        match self.zones.clone().create_zone(create).await {
            Ok(_) => {
                tracing::info!(%zone, "created the zone of ports' names");
                Ok(())
            }
            // Another registrar (a claim changing hands) made it a moment ago.
            Err(s) if s.code() == tonic::Code::AlreadyExists => Ok(()),
            Err(s) => Err(failed(format!("creating zone {zone}"), s)),
        }
    }

    /// Deletes `zone` and its records; gone already is done.
    pub async fn delete_zone(&self, zone: &str) -> Result<()> {
        let request = self.request(pb::ZoneRef { zone: zone.into() }).await?;
        match self.zones.clone().delete_zone(request).await {
            Ok(_) => {
                tracing::info!(%zone, "deleted the zone of a deleted VPC");
                Ok(())
            }
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(failed(format!("deleting zone {zone}"), s)),
        }
    }

    /// Every zone of the platform's project.
    pub async fn zones(&self) -> Result<Vec<String>> {
        let mut names = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = self.request(pb::ListZonesRequest { limit: 1000, page_token }).await?;
            let page = self.zones.clone().list_zones(request).await.map_err(|s| failed("listing zones".into(), s))?.into_inner();
            names.extend(page.zones.into_iter().map(|z| z.name));
            if page.next_page_token.is_empty() {
                return Ok(names);
            }
            page_token = page.next_page_token;
        }
    }

    pub async fn records(&self, zone: &str) -> Result<Vec<Set>> {
        let request = self.request(pb::ZoneRef { zone: zone.into() }).await?;
        let sets = self.zones.clone().list_records(request).await.map_err(|s| failed(format!("listing {zone}"), s))?;
        Ok(sets.into_inner().record_sets.into_iter().map(|s| Set { name: s.name, rtype: s.r#type, ttl: s.ttl, data: s.data }).collect())
    }

    pub async fn set(&self, zone: &str, set: &Set) -> Result<()> {
        let message = pb::SetRecordsRequest {
            zone: zone.into(),
            name: set.name.clone(),
            r#type: set.rtype.clone(),
            ttl: set.ttl,
            data: set.data.clone(),
        };
        let request = self.request(message).await?;
        self.zones.clone().set_records(request).await.map_err(|s| failed(format!("setting {} {}", set.name, set.rtype), s))?;
        Ok(())
    }

    /// Deletes a record set; gone already is done.
    pub async fn delete(&self, zone: &str, name: &str, rtype: &str) -> Result<()> {
        let request = self.request(pb::RecordRef { zone: zone.into(), name: name.into(), r#type: rtype.into() }).await?;
        match self.zones.clone().delete_records(request).await {
            Ok(_) => Ok(()),
            Err(s) if s.code() == tonic::Code::NotFound => Ok(()),
            Err(s) => Err(failed(format!("deleting {name} {rtype}"), s)),
        }
    }
}
