//! The management API as gRPC (`photon.flashdns.v1.Zones`): the same operations as the REST
//! routes, on the same `store::Zones`, with the project named in the `x-photon-org` and
//! `x-photon-project` metadata the auth guard decided on. Generated types stay here.

use photon_api::flashdns::v1 as pb;
use photon_api::flashdns::v1::zones_server::{Zones as ZonesApi, ZonesServer};
use photon_auth::Rule;
use photon_resource::{Owner, ResourceError};
use tonic::{Request, Response, Status};

use crate::model::{RecordSet, RecordSetSpec, Zone, ZoneSpec};
use crate::store::Zones;

const SERVICE: &str = "/photon.flashdns.v1.Zones/";

/// Every RPC and the IAM action it needs on the project the metadata names.
pub const METHODS: &[(&str, &str)] = &[
    ("CreateZone", "flashdns:zones:create"),
    ("GetZone", "flashdns:zones:get"),
    ("ListZones", "flashdns:zones:list"),
    ("DeleteZone", "flashdns:zones:delete"),
    ("SetRecords", "flashdns:records:set"),
    ("ListRecords", "flashdns:records:list"),
    ("DeleteRecords", "flashdns:records:delete"),
    ("ImportZone", "flashdns:zones:import"),
    ("ExportZone", "flashdns:zones:export"),
];

pub fn rules() -> Vec<Rule> {
    let project = "orgs/{header:x-photon-org}/projects/{header:x-photon-project}";
    METHODS.iter().map(|(method, action)| Rule::grpc(&format!("{SERVICE}{method}"), action, project)).collect()
}

#[derive(Clone)]
pub struct Grpc {
    zones: Zones,
}

impl Grpc {
    pub fn server(zones: Zones) -> ZonesServer<Self> {
        ZonesServer::new(Self { zones })
    }
}

/// The project a call names (the guard has checked the caller may act on it).
fn owner<T>(request: &Request<T>) -> Result<Owner, Status> {
    let get = |key: &str| {
        request
            .metadata()
            .get(key)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Status::invalid_argument(format!("the {key} metadata names the project")))
    };
    Ok(Owner::new(get("x-photon-org")?, get("x-photon-project")?))
}

fn zone(zone: Zone) -> pb::Zone {
    pb::Zone {
        name: zone.spec.name,
        org: zone.metadata.org,
        project: zone.metadata.project,
        serial: zone.serial,
        ttl: zone.spec.ttl,
        nameservers: zone.spec.nameservers,
        signed: !zone.dnssec.is_empty(),
        created_ms: zone.metadata.created_ms as i64,
        resource_version: zone.metadata.resource_version,
    }
}

fn record_set(set: RecordSet) -> pb::RecordSet {
    pb::RecordSet { name: set.name, r#type: set.rtype, ttl: set.ttl, data: set.data, resource_version: set.resource_version }
}

fn status(e: ResourceError) -> Status {
    Status::from(e)
}

#[tonic::async_trait]
impl ZonesApi for Grpc {
    async fn create_zone(&self, request: Request<pb::CreateZoneRequest>) -> Result<Response<pb::Zone>, Status> {
        let owner = owner(&request)?;
        let r = request.into_inner();
        let spec = ZoneSpec {
            name: r.name,
            ttl: if r.ttl == 0 { 3600 } else { r.ttl },
            soa: None,
            nameservers: r.nameservers,
            nameserver_ttl: None,
            reverse: None,
            secondaries: Vec::new(),
        };
        let created = self.zones.create(&owner, spec).await.map_err(status)?;
        Ok(Response::new(zone(created)))
    }

    async fn get_zone(&self, request: Request<pb::ZoneRef>) -> Result<Response<pb::Zone>, Status> {
        let owner = owner(&request)?;
        let found = self.zones.get(&owner, &request.into_inner().zone).await.map_err(status)?;
        Ok(Response::new(zone(found.value)))
    }

    async fn list_zones(&self, request: Request<pb::ListZonesRequest>) -> Result<Response<pb::ListZonesResponse>, Status> {
        let owner = owner(&request)?;
        let r = request.into_inner();
        let limit = if r.limit == 0 { 100 } else { r.limit.min(1000) } as usize;
        let after = Some(r.page_token).filter(|t| !t.is_empty());
        let (zones, next) = self.zones.list(&owner, after.as_deref(), limit).await.map_err(status)?;
        Ok(Response::new(pb::ListZonesResponse {
            zones: zones.into_iter().map(zone).collect(),
            next_page_token: next.unwrap_or_default(),
        }))
    }

    async fn delete_zone(&self, request: Request<pb::ZoneRef>) -> Result<Response<pb::Empty>, Status> {
        let owner = owner(&request)?;
        self.zones.delete(&owner, &request.into_inner().zone).await.map_err(status)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn set_records(&self, request: Request<pb::SetRecordsRequest>) -> Result<Response<pb::RecordSet>, Status> {
        let owner = owner(&request)?;
        let r = request.into_inner();
        let spec = RecordSetSpec { ttl: r.ttl, data: r.data };
        let set = self.zones.set_records(&owner, &r.zone, &r.name, &r.r#type, spec).await.map_err(status)?;
        Ok(Response::new(record_set(set)))
    }

    async fn list_records(&self, request: Request<pb::ZoneRef>) -> Result<Response<pb::ListRecordsResponse>, Status> {
        let owner = owner(&request)?;
        let sets = self.zones.record_sets(&owner, &request.into_inner().zone).await.map_err(status)?;
        Ok(Response::new(pb::ListRecordsResponse { record_sets: sets.into_iter().map(record_set).collect() }))
    }

    async fn delete_records(&self, request: Request<pb::RecordRef>) -> Result<Response<pb::Empty>, Status> {
        let owner = owner(&request)?;
        let r = request.into_inner();
        self.zones.delete_records(&owner, &r.zone, &r.name, &r.r#type).await.map_err(status)?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn import_zone(&self, request: Request<pb::ImportZoneRequest>) -> Result<Response<pb::Zone>, Status> {
        let owner = owner(&request)?;
        let r = request.into_inner();
        let imported = crate::import::import(&self.zones, &owner, &r.zone, &r.text).await.map_err(status)?;
        Ok(Response::new(zone(imported)))
    }

    async fn export_zone(&self, request: Request<pb::ZoneRef>) -> Result<Response<pb::ExportZoneResponse>, Status> {
        let owner = owner(&request)?;
        let text = crate::import::export(&self.zones, &owner, &request.into_inner().zone).await.map_err(status)?;
        Ok(Response::new(pb::ExportZoneResponse { text }))
    }
}
