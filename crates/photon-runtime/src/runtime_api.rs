//! The `photon.runtime.v1.Runtime` gRPC service every server answers.

use std::time::Instant;

use photon_api::runtime::v1::runtime_server::Runtime;
use photon_api::runtime::v1::{GetServerInfoRequest, HealthStatus as ProtoStatus, ServerInfo};
use tonic::{Request, Response, Status};

use crate::health::{Health, HealthStatus};

pub(crate) struct RuntimeService {
    pub service: &'static str,
    pub version: &'static str,
    pub node: String,
    pub started: Instant,
    pub health: Health,
}

#[tonic::async_trait]
impl Runtime for RuntimeService {
    async fn get_server_info(&self, _: Request<GetServerInfoRequest>) -> Result<Response<ServerInfo>, Status> {
        let report = self.health.report();
        let status = match report.status {
            HealthStatus::Healthy => ProtoStatus::Healthy,
            HealthStatus::Degraded => ProtoStatus::Degraded,
            HealthStatus::Unhealthy => ProtoStatus::Unhealthy,
        };
        Ok(Response::new(ServerInfo {
            service: self.service.to_string(),
            version: self.version.to_string(),
            node: self.node.clone(),
            uptime_seconds: self.started.elapsed().as_secs(),
            status: status as i32,
            health_json: report.to_json().to_string(),
        }))
    }
}
