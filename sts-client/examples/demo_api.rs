//! A tiny API behind the STS: `GET /whoami` for any valid token, `GET /admin/report` only with the `admin`
//! role. Run: `STS_ISSUER=http://127.0.0.1:19090 cargo run -p sts-client --example demo_api` (listens on
//! DEMO_API_LISTEN, default 127.0.0.1:8081; audience `demo-api`, or STS_AUDIENCE). Prints `READY <url>`.

use actix_web::{App, HttpServer, web};
use sts_client::Verifier;
use sts_client::actix::{Authenticated, RequireRole};

async fn whoami(user: Authenticated) -> web::Json<serde_json::Value> {
    web::Json(
        serde_json::json!({"sub": user.subject, "roles": user.roles, "client_id": user.client_id}),
    )
}

async fn report() -> &'static str {
    "admins only\n"
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let issuer = std::env::var("STS_ISSUER").unwrap_or_else(|_| "http://127.0.0.1:19090".into());
    let audience = std::env::var("STS_AUDIENCE").unwrap_or_else(|_| "demo-api".into());
    let verifier = Verifier::builder(issuer)
        .audience(audience)
        .build()
        .map_err(std::io::Error::other)?;
    let data = web::Data::new(verifier);
    let listen = std::env::var("DEMO_API_LISTEN").unwrap_or_else(|_| "127.0.0.1:8081".into());
    let listener = std::net::TcpListener::bind(&listen)?;
    println!("READY http://{}", listener.local_addr()?);
    HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/whoami", web::get().to(whoami))
            .service(
                web::scope("/admin")
                    .wrap(RequireRole::new("admin"))
                    .route("/report", web::get().to(report)),
            )
    })
    .workers(1)
    .listen(listener)?
    .run()
    .await
}
