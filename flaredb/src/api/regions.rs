//! The `photon.flaredb.v1.Regions` gRPC service: the regions this store replicates.

use photon_api::flaredb::v1 as pb;
use photon_api::flaredb::v1::regions_server::Regions;
use tonic::{Request, Response, Status};

use crate::store::{Region, Store};

pub struct RegionsService {
    store: Store,
    api_url: String,
}

impl RegionsService {
    /// `api_url`: this store's own API URL, listed for the regions it replicates.
    pub fn new(store: Store, api_url: String) -> Self {
        Self { store, api_url }
    }
}

/// `region` as the API describes it; `api_url` is filled in for this store's own replica.
pub fn describe(region: &Region, this_store: u64, api_url: &str) -> pb::Region {
    let descriptor = region.descriptor();
    let metrics = region.raft.metrics().borrow().clone();
    let peers = metrics
        .membership_config
        .membership()
        .nodes()
        .map(|(id, _)| pb::RegionPeer {
            store_id: *id,
            api_url: if *id == this_store { api_url.to_string() } else { String::new() },
        })
        .collect();
    pb::Region {
        id: descriptor.id,
        start_key: descriptor.start_key,
        end_key: descriptor.end_key,
        epoch: descriptor.epoch,
        peers,
        leader_store_id: metrics.current_leader.unwrap_or(0),
    }
}

fn descriptor(region: Option<pb::Region>) -> Result<crate::region::Descriptor, Status> {
    let r = region.ok_or_else(|| Status::invalid_argument("region is required"))?;
    Ok(crate::region::Descriptor { id: r.id, start_key: r.start_key, end_key: r.end_key, epoch: r.epoch })
}

#[tonic::async_trait]
impl Regions for RegionsService {
    async fn add_replica(
        &self,
        request: Request<pb::AddReplicaRequest>,
    ) -> Result<Response<pb::ReplicaChangeResponse>, Status> {
        self.store.add_replica(&request.into_inner()).await?;
        Ok(Response::new(pb::ReplicaChangeResponse {}))
    }

    async fn remove_replica(
        &self,
        request: Request<pb::RemoveReplicaRequest>,
    ) -> Result<Response<pb::ReplicaChangeResponse>, Status> {
        let r = request.into_inner();
        self.store.remove_replica(r.region_id, r.store_id).await?;
        Ok(Response::new(pb::ReplicaChangeResponse {}))
    }

    async fn reseed(&self, request: Request<pb::ReseedRequest>) -> Result<Response<pb::ReplicaChangeResponse>, Status> {
        self.store.reseed(request.into_inner().region_id).await?;
        Ok(Response::new(pb::ReplicaChangeResponse {}))
    }

    async fn campaign(
        &self,
        request: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::ReplicaChangeResponse>, Status> {
        self.store.campaign(request.into_inner().region_id).await?;
        Ok(Response::new(pb::ReplicaChangeResponse {}))
    }

    async fn yield_leadership(
        &self,
        request: Request<pb::CampaignRequest>,
    ) -> Result<Response<pb::ReplicaChangeResponse>, Status> {
        self.store.yield_leadership(request.into_inner().region_id)?;
        Ok(Response::new(pb::ReplicaChangeResponse {}))
    }

    async fn open_replica(
        &self,
        request: Request<pb::OpenReplicaRequest>,
    ) -> Result<Response<pb::ReplicaChangeResponse>, Status> {
        self.store.open_replica(descriptor(request.into_inner().region)?).await?;
        Ok(Response::new(pb::ReplicaChangeResponse {}))
    }

    async fn list_regions(
        &self,
        _request: Request<pb::ListRegionsRequest>,
    ) -> Result<Response<pb::ListRegionsResponse>, Status> {
        let regions = self.store.regions().iter().map(|r| describe(r, self.store.id, &self.api_url)).collect();
        Ok(Response::new(pb::ListRegionsResponse { regions }))
    }

    async fn split_region(
        &self,
        request: Request<pb::SplitRegionRequest>,
    ) -> Result<Response<pb::SplitRegionResponse>, Status> {
        let r = request.into_inner();
        let split_key = (!r.split_key.is_empty()).then_some(r.split_key);
        let (left, right) = self.store.split(r.region_id, split_key).await?;
        // The right region's group starts as the split applies; describe it as far as known.
        let describe_id =
            |id: u64| self.store.region(id).ok().map(|region| describe(&region, self.store.id, &self.api_url));
        let plain = |d: crate::region::Descriptor| pb::Region {
            id: d.id,
            start_key: d.start_key,
            end_key: d.end_key,
            epoch: d.epoch,
            ..Default::default()
        };
        Ok(Response::new(pb::SplitRegionResponse {
            left: Some(describe_id(left.id).unwrap_or_else(|| plain(left))),
            right: Some(describe_id(right.id).unwrap_or_else(|| plain(right))),
        }))
    }
}
