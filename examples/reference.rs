//! The benchmark's reference point: the least a tiny_http + minijinja
//! program can do to serve a page like wxauth's /profile. The same templates
//! and a fixed user, one loop, no session lookup, no security headers: the
//! ceiling of this stack on the machine. `scripts/bench.sh` runs it.
//!
//! Its socket has TCP_NODELAY, as wxauth's does: without it every kept-alive
//! request waits for a delayed ACK (40 ms), and the "ceiling" would be 25
//! requests a second.
//!
//! Usage: cargo run --release --example reference -- 127.0.0.1:PORT

use minijinja::{context, Environment};

fn main() {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".into());
    let listener = std::net::TcpListener::bind(&addr).expect("bind the reference server");
    socket2::SockRef::from(&listener)
        .set_tcp_nodelay(true)
        .expect("TCP_NODELAY");
    let server = tiny_http::Server::from_listener(listener, None).expect("serve");
    let mut env = Environment::new();
    env.add_template(
        "base.html",
        include_str!("../crates/app/templates/base.html"),
    )
    .expect("base.html parses");
    env.add_template(
        "profile.html",
        include_str!("../crates/app/templates/profile.html"),
    )
    .expect("profile.html parses");
    let template = env
        .get_template("profile.html")
        .expect("profile.html exists");
    println!("reference listening on http://{addr}");
    for request in server.incoming_requests() {
        let user = context! {
            openid => "oSim0PandaXiaoMingEmoji00001", nickname => "熊猫🐼小明", sex_label => "男",
            province => "广东", city => "深圳", country => "中国", privilege => vec!["chinaunicom"],
            unionid => "oSimUnion0PandaXiaoMing00001", avatar => "https://thirdwx.qlogo.cn/mmopen/vi_32/x/132",
        };
        let page = template
            .render(context! { user, scope => "snsapi_userinfo", demo => false, sim_url => "" })
            .expect("the page renders");
        let header = tiny_http::Header::from_bytes("Content-Type", "text/html; charset=utf-8")
            .expect("a valid header");
        let _ = request.respond(tiny_http::Response::from_string(page).with_header(header));
    }
}
