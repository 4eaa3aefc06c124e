//! MX and address lookups against a real DNS server on loopback (dnsmasq).

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use smtp_relay::dns::Dns;
use smtp_relay::mx::{self, MxAnswer, MxRecord};
use support::dnsmasq::Dnsmasq;

fn server() -> Dnsmasq {
    Dnsmasq::start(&[
        "--mx-host=example.test,mx1.example.test,10",
        "--mx-host=example.test,mx2.example.test,20",
        "--host-record=mx1.example.test,127.0.0.1",
        "--host-record=mx2.example.test,127.0.0.2,::1",
        "--host-record=nomx.test,127.0.0.3",
        "--mx-host=dangling.test,nowhere.dangling.test,10",
    ])
}

#[tokio::test]
async fn mx_records_and_their_absence() {
    let dns_server = server();
    let dns = Dns::new(&[dns_server.addr], Duration::from_secs(2)).unwrap();
    let MxAnswer::Records(mut records) = dns.mx("Example.TEST").await else {
        panic!()
    };
    records.sort_by_key(|r| r.preference);
    let expected = [
        MxRecord {
            preference: 10,
            exchange: "mx1.example.test.".into(),
        },
        MxRecord {
            preference: 20,
            exchange: "mx2.example.test.".into(),
        },
    ];
    assert_eq!(records, expected);
    assert_eq!(dns.mx("nomx.test").await, MxAnswer::NoRecords);
    assert_eq!(dns.mx("nx.test").await, MxAnswer::NoSuchDomain);

    // From the answer to the hosts to try, and their addresses.
    let answer = dns.mx("example.test").await;
    let hosts = mx::hosts("example.test", &answer, &[], &mut || 0).unwrap();
    assert_eq!(hosts, ["mx1.example.test", "mx2.example.test"]);
    let one = dns.addresses("mx1.example.test", false).await.unwrap();
    assert_eq!(one, [IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1))]);
    let mut two = dns.addresses("mx2.example.test", false).await.unwrap();
    two.sort();
    assert_eq!(
        two,
        [
            "127.0.0.2".parse::<IpAddr>().unwrap(),
            "::1".parse().unwrap()
        ]
    );

    // No MX: the domain itself; a domain with neither fails for good, an MX host
    // without addresses only for now.
    let answer = dns.mx("nomx.test").await;
    assert_eq!(
        mx::hosts("nomx.test", &answer, &[], &mut || 0).unwrap(),
        ["nomx.test"]
    );
    assert_eq!(dns.addresses("nomx.test", true).await.unwrap().len(), 1);
    let e = dns.addresses("nx.test", true).await.unwrap_err();
    assert_eq!((e.permanent, e.enhanced), (true, (5, 1, 2)));
    let e = dns
        .addresses("nowhere.dangling.test", false)
        .await
        .unwrap_err();
    assert_eq!((e.permanent, e.enhanced), (false, (4, 4, 3)));
}

#[tokio::test]
async fn a_silent_server_is_a_temporary_failure() {
    // A UDP socket that never answers (and no TCP listener).
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let dns = Dns::new(&[silent.local_addr().unwrap()], Duration::from_millis(300)).unwrap();
    let MxAnswer::Failed(why) = dns.mx("example.test").await else {
        panic!()
    };
    assert!(!why.is_empty());
    let e = mx::hosts("example.test", &MxAnswer::Failed(why), &[], &mut || 0).unwrap_err();
    assert_eq!((e.permanent, e.enhanced), (false, (4, 4, 3)));
}
