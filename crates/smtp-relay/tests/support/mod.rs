pub mod dnsmasq;
