//! What the DHCP server answers, message by message (the overlay test runs busybox udhcpc
//! against it).

use super::*;
use crate::dataplane::plan::SubnetPlan;
use crate::model::port::{Binding, Device};
use dhcproto::v4::Flags;
use photon_resource::Owner;

const MAC: [u8; 6] = [2, 0x7e, 10, 0, 1, 10];

fn vpc(dhcp: bool) -> VpcPlan {
    VpcPlan {
        vni: 5000,
        owner: Owner { org: "acme".into(), project: "web".into() },
        name: "blue".into(),
        gateway_mac: [2, 0x7f, 0, 0x13, 0x88, 1],
        mtu: 1450,
        subnets: vec![SubnetPlan {
            name: "front".into(),
            cidr: "10.0.1.0/24".parse().unwrap(),
            gateway: "10.0.1.1".parse().unwrap(),
            dhcp,
            dns_servers: vec!["10.0.0.2".parse().unwrap()],
            routes: vec![("192.168.0.0/16".parse().unwrap(), "10.0.1.254".parse().unwrap())],
            domain: Some("front.blue.web.acme.photon.internal".into()),
        }],
        local: vec![LocalPort {
            key: "/photoncloud/prismnet/r/acme/web/vpcs.subnets.ports/blue/front/db1".into(),
            device: "p0000000001".into(),
            mac: MAC,
            ip: "10.0.1.10".parse().unwrap(),
            subnet: "10.0.1.0/24".parse().unwrap(),
            gateway: "10.0.1.1".parse().unwrap(),
            binding: Binding { node: "n".into(), device: Device::Veth, netns: Some("m".into()), ifname: None, configure: false },
            security_groups: Vec::new(),
            port_security: true,
        }],
        remote: Vec::new(),
        groups: Default::default(),
        members: Default::default(),
        external: None,
    }
}

fn request(kind: MessageType, mac: [u8; 6], requested: Option<&str>) -> Message {
    let mut chaddr = mac.to_vec();
    chaddr.resize(16, 0);
    let mut message = Message::default();
    message.set_opcode(Opcode::BootRequest).set_xid(0x1234).set_flags(Flags::default().set_broadcast()).set_chaddr(&mac);
    message.opts_mut().insert(DhcpOption::MessageType(kind));
    if let Some(ip) = requested {
        message.opts_mut().insert(DhcpOption::RequestedIpAddress(ip.parse().unwrap()));
    }
    // Through the wire and back, as the server sees it.
    let mut bytes = Vec::new();
    message.encode(&mut Encoder::new(&mut bytes)).unwrap();
    Message::decode(&mut Decoder::new(&bytes)).unwrap()
}

#[test]
fn a_port_is_offered_and_acked_its_own_address_with_the_subnets_settings() {
    let offer = answer(&vpc(true), &request(MessageType::Discover, MAC, None)).expect("an offer");
    assert_eq!(offer.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!((offer.xid(), offer.yiaddr()), (0x1234, "10.0.1.10".parse().unwrap()));
    let get = |code| offer.opts().get(code).cloned();
    assert_eq!(get(OptionCode::SubnetMask), Some(DhcpOption::SubnetMask("255.255.255.0".parse().unwrap())));
    assert_eq!(get(OptionCode::Router), Some(DhcpOption::Router(vec!["10.0.1.1".parse().unwrap()])));
    assert_eq!(get(OptionCode::DomainNameServer), Some(DhcpOption::DomainNameServer(vec!["10.0.0.2".parse().unwrap()])));
    assert_eq!(get(OptionCode::InterfaceMtu), Some(DhcpOption::InterfaceMtu(1450)));
    assert_eq!(get(OptionCode::ServerIdentifier), Some(DhcpOption::ServerIdentifier("10.0.1.1".parse().unwrap())));
    let Some(DhcpOption::ClasslessStaticRoute(routes)) = get(OptionCode::ClasslessStaticRoute) else { panic!("routes") };
    assert_eq!(routes.len(), 2, "the subnet's route and the default one: {routes:?}");
    assert_eq!(get(OptionCode::Hostname), Some(DhcpOption::Hostname("db1".into())), "the port's name");
    assert_eq!(get(OptionCode::DomainName), Some(DhcpOption::DomainName("front.blue.web.acme.photon.internal".into())));

    let ack = answer(&vpc(true), &request(MessageType::Request, MAC, Some("10.0.1.10"))).expect("an ack");
    assert_eq!(ack.opts().msg_type(), Some(MessageType::Ack));
    let nak = answer(&vpc(true), &request(MessageType::Request, MAC, Some("10.0.1.99"))).expect("a nak");
    assert_eq!(nak.opts().msg_type(), Some(MessageType::Nak));
    assert!(nak.yiaddr().is_unspecified());
}

#[test]
fn strangers_and_ports_of_subnets_without_dhcp_get_no_answer() {
    assert!(answer(&vpc(true), &request(MessageType::Discover, [2, 0, 0, 0, 0, 1], None)).is_none());
    assert!(answer(&vpc(false), &request(MessageType::Discover, MAC, None)).is_none());
    assert!(answer(&vpc(true), &request(MessageType::Release, MAC, None)).is_none());
}
