//! The gossip agent: one task owns the UDP socket and the foca instance (an actor), feeds it
//! packets, timers and commands, sends what it asks to send, and publishes the member table on
//! a watch channel after every step that changed it.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use foca::{AccumulatingRuntime, Foca, OwnedNotification, PostcardCodec, Timer};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::advert::{self, Advert, Adverts, NodeInfo, ServiceHealth};
use crate::envelope::{Envelope, OVERHEAD};
use crate::identity::Id;
use crate::{Config, Member, MemberState};

/// Largest datagram sent: below a 1500-byte Ethernet MTU with IP and UDP headers.
const MAX_DATAGRAM: usize = 1400;
/// How long resolving one seed's name may hold up the agent.
const SEED_LOOKUP_TIMEOUT: Duration = Duration::from_millis(100);
/// How far a packet's clock may be from ours before it is refused as a replay.
const REPLAY_WINDOW_MS: i64 = 5 * 60 * 1000;

type Swim = Foca<Id, PostcardCodec, StdRng, Adverts>;

enum Command {
    SetServices(Vec<ServiceHealth>),
}

/// A running gossip agent. Dropping it does not stop it; the shutdown token does (the node
/// leaves the cluster gracefully, so the others mark it dead at once).
#[derive(Clone)]
pub struct Gossip {
    members: watch::Receiver<Vec<Member>>,
    commands: mpsc::Sender<Command>,
    local_addr: SocketAddr,
}

impl Gossip {
    /// Binds the gossip port and starts the agent on `tasks`.
    pub async fn start(config: Config, shutdown: CancellationToken, tasks: &TaskTracker) -> std::io::Result<Self> {
        let socket = UdpSocket::bind(config.listen).await?;
        let local_addr = socket.local_addr()?;
        let advertise = config.advertise.unwrap_or(local_addr);
        let me = Id { addr: advertise, node: config.node.clone(), bump: now_ms() as u64 };
        let (members_tx, members) = watch::channel(Vec::new());
        let (commands, commands_rx) = mpsc::channel(16);
        let adverts = Adverts::default();
        let foca = Foca::with_custom_broadcast(
            me.clone(),
            foca_config(&config),
            StdRng::from_os_rng(),
            PostcardCodec,
            adverts.clone(),
        );
        let info = NodeInfo {
            node: config.node.clone(),
            roles: config.roles.clone(),
            gossip_addr: advertise,
            api_url: config.api_url.clone(),
            services: Vec::new(),
        };
        let agent = Agent {
            envelope: Envelope::new(&config.key, REPLAY_WINDOW_MS),
            config,
            socket,
            foca,
            runtime: AccumulatingRuntime::new(),
            timers: Timers::default(),
            adverts,
            info,
            advert_version: 0,
            table: BTreeMap::new(),
            members_tx,
        };
        tracing::info!(node = %me.node, listen = %local_addr, advertise = %advertise, "gossip: joining the node membership");
        tasks.spawn(agent.run(commands_rx, shutdown));
        Ok(Self { members, commands, local_addr })
    }

    /// The member table (this node included), updated as members come, go and change.
    pub fn members(&self) -> watch::Receiver<Vec<Member>> {
        self.members.clone()
    }

    /// The address the gossip port is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Advertises the health of this node's services (sent to the others only if it changed).
    pub async fn set_services(&self, services: Vec<ServiceHealth>) {
        let _ = self.commands.send(Command::SetServices(services)).await;
    }
}

fn foca_config(config: &Config) -> foca::Config {
    let timing = &config.timing;
    let mut foca = foca::Config::new_lan(NonZeroU32::new(16).unwrap_or(NonZeroU32::MIN));
    foca.probe_period = timing.probe_period;
    foca.probe_rtt = timing.probe_rtt;
    foca.suspect_to_down_after = timing.suspect_to_down;
    // Down members are kept in the table (as dead) by the agent, not by foca.
    foca.remove_down_after = Duration::from_secs(120);
    foca.max_packet_size = std::num::NonZeroUsize::new(MAX_DATAGRAM - OVERHEAD).unwrap_or(foca.max_packet_size);
    // A node cut off and healed comes back as soon as either side talks to the other again.
    foca.periodic_announce_to_down_members =
        Some(foca::PeriodicParams { frequency: timing.rejoin_every, num_members: std::num::NonZeroUsize::MIN });
    foca
}

/// Foca's timers, due in order of their deadline (then of submission).
#[derive(Default)]
struct Timers {
    queue: BinaryHeap<Reverse<(Instant, u64)>>,
    events: HashMap<u64, Timer<Id>>,
    next: u64,
}

impl Timers {
    fn add(&mut self, at: Instant, timer: Timer<Id>) {
        self.next += 1;
        self.queue.push(Reverse((at, self.next)));
        self.events.insert(self.next, timer);
    }

    fn deadline(&self) -> Option<Instant> {
        self.queue.peek().map(|Reverse((at, _))| *at)
    }

    fn pop_due(&mut self, now: Instant) -> Option<Timer<Id>> {
        match self.queue.peek() {
            Some(Reverse((at, seq))) if *at <= now => {
                let seq = *seq;
                self.queue.pop();
                self.events.remove(&seq)
            }
            _ => None,
        }
    }
}

struct Agent {
    config: Config,
    envelope: Envelope,
    socket: UdpSocket,
    foca: Swim,
    runtime: AccumulatingRuntime<Id>,
    timers: Timers,
    adverts: Adverts,
    info: NodeInfo,
    advert_version: u64,
    /// Every member ever seen, by node id; foca forgets dead ones, this table keeps them dead.
    table: BTreeMap<String, Member>,
    members_tx: watch::Sender<Vec<Member>>,
}

impl Agent {
    async fn run(mut self, mut commands: mpsc::Receiver<Command>, shutdown: CancellationToken) {
        let mut buf = vec![0u8; 65_536];
        let mut announce = tokio::time::interval(self.config.timing.rejoin_every);
        let mut advertise = tokio::time::interval(self.config.timing.advert_every);
        self.publish_advert();
        loop {
            let deadline = self.timers.deadline();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.receive(&buf[..len], from),
                    Err(e) => tracing::debug!(error = %e, "gossip: receive failed"),
                },
                _ = sleep_until(deadline) => {
                    let now = Instant::now();
                    while let Some(timer) = self.timers.pop_due(now) {
                        if let Err(e) = self.foca.handle_timer(timer, &mut self.runtime) {
                            tracing::debug!(error = %e, "gossip: timer");
                        }
                    }
                }
                Some(command) = commands.recv() => match command {
                    Command::SetServices(services) => {
                        if services != self.info.services {
                            self.info.services = services;
                            self.publish_advert();
                        }
                    }
                },
                _ = announce.tick() => self.announce_to_missing_seeds().await,
                _ = advertise.tick() => self.publish_advert(),
            }
            self.flush().await;
        }
        if let Err(e) = self.foca.leave_cluster(&mut self.runtime) {
            tracing::debug!(error = %e, "gossip: leaving");
        }
        self.flush().await;
        tracing::info!("gossip: left the node membership");
    }

    fn receive(&mut self, packet: &[u8], from: SocketAddr) {
        match self.envelope.open(packet, now_ms()) {
            Ok(payload) => {
                if let Err(e) = self.foca.handle_data(payload, &mut self.runtime) {
                    tracing::debug!(error = %e, %from, "gossip: packet not taken");
                }
            }
            Err(why) => tracing::debug!(%from, reason = %why, "gossip: dropped a packet"),
        }
    }

    /// Re-sends this node's advert with a newer version.
    fn publish_advert(&mut self) {
        self.advert_version = (now_ms() as u64).max(self.advert_version + 1);
        let advert = Advert { version: self.advert_version, info: self.info.clone() };
        if let Err(e) = self.foca.add_broadcast(&advert::encode(&advert)) {
            tracing::debug!(error = %e, "gossip: advert not queued");
        }
    }

    /// Announces this node to every seed that is not an active member: how a cluster forms
    /// when its nodes start in any order, and how a node that was cut off finds its way back.
    async fn announce_to_missing_seeds(&mut self) {
        for seed in &self.config.seeds {
            // Bounded: this task also answers probes, and a slow resolver must not make this
            // node look dead to the others.
            let lookup = tokio::time::timeout(SEED_LOOKUP_TIMEOUT, tokio::net::lookup_host(seed.as_str())).await;
            let Ok(Ok(addrs)) = lookup else {
                tracing::debug!(seed, "gossip: seed does not resolve (in time)");
                continue;
            };
            for addr in addrs {
                let known = self.foca.iter_members().any(|m| m.id().addr == addr);
                if known || addr == self.foca.identity().addr {
                    continue;
                }
                let probe = Id { addr, node: String::new(), bump: 0 };
                if let Err(e) = self.foca.announce(probe, &mut self.runtime) {
                    tracing::debug!(error = %e, %addr, "gossip: announce");
                }
            }
        }
    }

    /// Sends, schedules and reports what foca asked for, then republishes the table.
    async fn flush(&mut self) {
        while let Some((to, data)) = self.runtime.to_send() {
            let packet = self.envelope.seal(&data, now_ms());
            if let Err(e) = self.socket.send_to(&packet, to.addr).await {
                tracing::debug!(error = %e, to = %to.addr, "gossip: send failed");
            }
        }
        let now = Instant::now();
        while let Some((after, timer)) = self.runtime.to_schedule() {
            self.timers.add(now + after, timer);
        }
        while let Some(notification) = self.runtime.to_notify() {
            match notification {
                OwnedNotification::MemberUp(id) => {
                    tracing::info!(node = %id.node, addr = %id.addr, "gossip: node is up")
                }
                OwnedNotification::MemberDown(id) => {
                    tracing::warn!(node = %id.node, addr = %id.addr, "gossip: node declared dead")
                }
                OwnedNotification::Rejoin(id) => {
                    tracing::warn!(bump = id.bump, "gossip: this node was declared dead; rejoined under a new identity")
                }
                OwnedNotification::Idle => tracing::info!("gossip: no other node is reachable"),
                OwnedNotification::Active => tracing::info!("gossip: known to the cluster"),
                _ => {}
            }
        }
        self.refresh_table();
    }

    fn refresh_table(&mut self) {
        let now = now_ms();
        let adverts = self.adverts.snapshot();
        // The newest identity of each node decides its state (an old one may linger as down).
        let mut newest: BTreeMap<String, (&Id, MemberState)> = BTreeMap::new();
        for member in self.foca.iter_membership_state() {
            let id = member.id();
            let state = match member.state() {
                foca::State::Alive => MemberState::Alive,
                foca::State::Suspect => MemberState::Suspect,
                foca::State::Down => MemberState::Dead,
            };
            match newest.get(&id.node) {
                Some((known, _)) if known.bump >= id.bump => {}
                _ => {
                    newest.insert(id.node.clone(), (id, state));
                }
            }
        }
        let me = self.foca.identity().clone();
        newest.insert(me.node.clone(), (&me, MemberState::Alive));
        for (node, (id, state)) in newest {
            let info =
                if node == me.node { Some(self.info.clone()) } else { adverts.get(&node).map(|a| a.info.clone()) };
            let entry = self.table.entry(node.clone()).or_insert_with(|| Member {
                node: node.clone(),
                addr: id.addr,
                state,
                since_ms: now,
                info: None,
                is_self: node == me.node,
            });
            if entry.state != state {
                entry.state = state;
                entry.since_ms = now;
            }
            entry.addr = id.addr;
            if info.is_some() {
                entry.info = info;
            }
        }
        // A node foca no longer lists at all was forgotten after being down: it stays dead here.
        for member in self.table.values_mut() {
            let listed = member.is_self || self.foca.iter_membership_state().any(|m| m.id().node == member.node);
            if !listed && member.state != MemberState::Dead {
                member.state = MemberState::Dead;
                member.since_ms = now;
            }
        }
        let members: Vec<Member> = self.table.values().cloned().collect();
        self.members_tx.send_if_modified(|current| {
            if *current == members {
                false
            } else {
                *current = members;
                true
            }
        });
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}
