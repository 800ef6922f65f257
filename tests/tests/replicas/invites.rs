//! One invite redeemed by 16 callers at once over three replicas: exactly
//! one gets the user and its access token, everywhere valid.

use tessera_client::tonic::Code;
use tessera_tests::assert_status;
use tessera_tests::credentials::{accept_invite, invite_user};
use tessera_tests::grpc::{released_together, verify_bearer};
use tessera_tests::install::{consume_as_ada, token_in_banner, wait_for_banners};

use super::{REPLICAS, one_at_a_time, postgres, replicas, schedulers};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_sixteen_redemptions_over_three_replicas_exactly_one_wins() {
    const RACERS: usize = 16;
    let _serial = one_at_a_time().await;
    let db = postgres().await;
    let servers = replicas(&db).await;
    let all_stdout = || servers.iter().map(|s| s.stdout()).collect::<String>();
    let install_token = token_in_banner(&wait_for_banners(all_stdout, 1).await);
    let admin = consume_as_ada(&servers[0], &install_token)
        .await
        .expect("the first admin");
    let mut ada = servers[1].client(Some(&admin.admin_token)).await;

    for round in 0..3 {
        let email = format!("racer{round}@example.com");
        let invited = invite_user(&mut ada, &email, &[], 0).await.expect("invite");
        let mut clients = Vec::new();
        for i in 0..RACERS {
            clients.push(servers[i % REPLICAS].client(None).await);
        }
        let invite = invited.invite_token.clone();
        let results = released_together(RACERS, |i| {
            let mut client = clients[i].clone();
            let invite = invite.clone();
            async move { accept_invite(&mut client, &invite, "racer").await }
        })
        .await;
        let winners: Vec<_> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
        assert_eq!(winners.len(), 1, "round {round}: {results:?}");
        for status in results.iter().filter_map(|r| r.as_ref().err()) {
            assert_status(status, Code::Unauthenticated, None);
        }
        for mut service in schedulers(&servers).await {
            let user = verify_bearer(&mut service, &winners[0].access_token)
                .await
                .expect("the winner's token is valid everywhere");
            assert_eq!(user.email, email);
        }
    }
}
