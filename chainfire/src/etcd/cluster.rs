//! etcd's `Cluster` service over Raft membership: MemberList, MemberAdd (as voter or learner),
//! MemberRemove, MemberUpdate, MemberPromote, on any member (changes go through the leader).
//! Peer URLs are Raft peer addresses
//! (`https://host:port`); client URLs are what each member published through Raft at start.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{SystemTime, UNIX_EPOCH};

use photon_api::etcd::etcdserverpb::cluster_server::Cluster;
use photon_api::etcd::etcdserverpb::{
    Member, MemberAddRequest, MemberAddResponse, MemberListRequest, MemberListResponse, MemberPromoteRequest,
    MemberPromoteResponse, MemberRemoveRequest, MemberRemoveResponse, MemberUpdateRequest, MemberUpdateResponse,
};
use photon_raft::network::ProposeError;
use photon_raft::openraft::{BasicNode, ChangeMembers};
use photon_raft::NodeId;
use tonic::{Request, Response, Status};

use crate::node::Node;

pub struct ClusterService {
    node: Node,
    /// This member's client URL, e.g. `https://127.0.0.1:2379`.
    client_url: String,
}

impl ClusterService {
    pub fn new(node: Node, client_url: String) -> Self {
        Self { node, client_url }
    }

    fn members(&self) -> Vec<Member> {
        self.node
            .members()
            .into_iter()
            .map(|m| Member {
                id: m.id,
                name: format!("chainfire-{}", m.id),
                peer_ur_ls: vec![format!("https://{}", m.peer_addr)],
                // Its own URL is known before it is published.
                client_ur_ls: if m.id == self.node.id && m.client_urls.is_empty() {
                    vec![self.client_url.clone()]
                } else {
                    m.client_urls
                },
                is_learner: !m.voter,
            })
            .collect()
    }

    fn header(&self) -> Option<photon_api::etcd::etcdserverpb::ResponseHeader> {
        Some(self.node.header(*self.node.revisions.borrow()))
    }

    /// A membership change, made through the leader whichever member was asked.
    async fn change(&self, change: ChangeMembers<NodeId, BasicNode>) -> Result<(), Status> {
        match self.node.change_membership(change).await {
            Ok(()) => Ok(()),
            Err(ProposeError::Rejected(why)) => {
                Err(Status::failed_precondition(format!("etcdserver: re-configuration failed: {why}")))
            }
            Err(ProposeError::NoLeader) => Err(Status::unavailable("etcdserver: no leader")),
            Err(ProposeError::Timeout) => Err(Status::unavailable("etcdserver: request timed out")),
            Err(ProposeError::Stopped) => Err(Status::unavailable("etcdserver: server stopped")),
        }
    }

    /// Member `id` once this node has applied the change that added it: asked of a follower,
    /// the change commits on the leader first, and the answer must not race this node's apply.
    async fn applied(&self, id: u64) -> Result<Member, Status> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            match self.find(id) {
                Err(status) if std::time::Instant::now() < deadline && status.code() == tonic::Code::NotFound => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                answer => return answer,
            }
        }
    }

    fn find(&self, id: u64) -> Result<Member, Status> {
        self.members().into_iter().find(|m| m.id == id).ok_or_else(|| Status::not_found("etcdserver: member not found"))
    }
}

/// `https://host:port` (or bare `host:port`) → `host:port`, refusing anything else.
fn peer_addr(url: &str) -> Result<String, Status> {
    let bad = || Status::invalid_argument("etcdserver: given member URLs are invalid");
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://")).unwrap_or(url);
    let rest = rest.trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
    if host.is_empty() || port.parse::<u16>().is_err() || rest.contains('/') {
        return Err(bad());
    }
    Ok(rest.to_string())
}

#[tonic::async_trait]
impl Cluster for ClusterService {
    async fn member_add(&self, request: Request<MemberAddRequest>) -> Result<Response<MemberAddResponse>, Status> {
        let request = request.into_inner();
        let [url] = request.peer_ur_ls.as_slice() else {
            return Err(Status::invalid_argument("etcdserver: given member URLs are invalid"));
        };
        let addr = peer_addr(url)?;
        if self
            .members()
            .iter()
            .any(|m| m.peer_ur_ls.iter().any(|u| peer_addr(u).ok().as_deref() == Some(addr.as_str())))
        {
            return Err(Status::failed_precondition("etcdserver: Peer URLs already exists"));
        }
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0);
        let id = (nanos ^ (self.node.id << 56)) | 1;
        self.change(ChangeMembers::AddNodes(BTreeMap::from([(id, BasicNode { addr })]))).await?;
        if !request.is_learner {
            self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await?;
        }
        let member = self.applied(id).await?;
        Ok(Response::new(MemberAddResponse { header: self.header(), member: Some(member), members: self.members() }))
    }

    async fn member_remove(
        &self,
        request: Request<MemberRemoveRequest>,
    ) -> Result<Response<MemberRemoveResponse>, Status> {
        let id = request.into_inner().id;
        let member = self.find(id)?;
        if !member.is_learner {
            self.change(ChangeMembers::RemoveVoters(BTreeSet::from([id]))).await?;
        }
        self.change(ChangeMembers::RemoveNodes(BTreeSet::from([id]))).await?;
        Ok(Response::new(MemberRemoveResponse { header: self.header(), members: self.members() }))
    }

    async fn member_update(
        &self,
        request: Request<MemberUpdateRequest>,
    ) -> Result<Response<MemberUpdateResponse>, Status> {
        let request = request.into_inner();
        self.find(request.id)?;
        let [url] = request.peer_ur_ls.as_slice() else {
            return Err(Status::invalid_argument("etcdserver: given member URLs are invalid"));
        };
        let addr = peer_addr(url)?;
        self.change(ChangeMembers::SetNodes(BTreeMap::from([(request.id, BasicNode { addr })]))).await?;
        Ok(Response::new(MemberUpdateResponse { header: self.header(), members: self.members() }))
    }

    async fn member_list(&self, _: Request<MemberListRequest>) -> Result<Response<MemberListResponse>, Status> {
        Ok(Response::new(MemberListResponse { header: self.header(), members: self.members() }))
    }

    async fn member_promote(
        &self,
        request: Request<MemberPromoteRequest>,
    ) -> Result<Response<MemberPromoteResponse>, Status> {
        let id = request.into_inner().id;
        if !self.find(id)?.is_learner {
            return Err(Status::failed_precondition("etcdserver: can only promote a learner member"));
        }
        self.change(ChangeMembers::AddVoterIds(BTreeSet::from([id]))).await?;
        Ok(Response::new(MemberPromoteResponse { header: self.header(), members: self.members() }))
    }
}

#[cfg(test)]
mod tests {
    use super::peer_addr;

    #[test]
    fn peer_urls_must_be_host_and_port() {
        assert_eq!(peer_addr("https://10.0.0.1:2380").unwrap(), "10.0.0.1:2380");
        assert_eq!(peer_addr("node02:2380").unwrap(), "node02:2380");
        for bad in ["https://node02", "https://:2380", "node:99999", "https://a:1/path", ""] {
            assert!(peer_addr(bad).is_err(), "{bad} must be refused");
        }
    }
}
