//! The building blocks together, as a `.flux.yaml` generator would use them: parse the file,
//! check out the revision, run its generator and updaters with real `sh`, read back the changes.

use flux_core::policy::Lock;
use flux_core::{FileChange, Location, PolicyChange, ResourceId, SourceFile};
use flux_generate::{
    Checkout, CommandRunner, ConfigCommand, FluxYaml, FluxYamlConfig, ShellCommand, UpdaterChange, parse_flux_yaml,
    updater_env,
};

fn file(path: &str, content: &str) -> SourceFile {
    SourceFile { path: path.to_owned(), content: content.as_bytes().to_vec() }
}

const FLUX_YAML: &str = "\
version: 1
commandUpdated:
  generators:
    - command: sh gen.sh
  updaters:
    - containerImage:
        command: echo \"$FLUX_CONTAINER=$FLUX_IMG:$FLUX_TAG\" > image.txt
      policy:
        command: echo \"$FLUX_WORKLOAD $FLUX_POLICY=${FLUX_POLICY_VALUE-(removed)}\" >> policies.txt
";

/// Scripts are run with `sh`: a checkout has no executable bits.
const GEN: &str = "\
image=$(cut -d= -f2 image.txt)
printf 'kind: Deployment\\nmetadata: {name: web}\\nimage: %s\\n' \"$image\"
";

fn repo() -> Vec<SourceFile> {
    vec![
        file("staging/.flux.yaml", FLUX_YAML),
        file("staging/gen.sh", GEN),
        file("staging/image.txt", "app=registry.local/web:1.0\n"),
    ]
}

fn shell(config: &FluxYaml, command: &ConfigCommand, checkout: &Checkout) -> ShellCommand {
    let dir = checkout.join("staging").expect("a valid path");
    ShellCommand::new(&command.command, dir, Location::line(&config.file, command.line))
}

#[tokio::test]
async fn generate_then_update_an_image_and_a_policy() {
    let files = repo();
    let config = parse_flux_yaml("staging/.flux.yaml", FLUX_YAML).unwrap();
    let FluxYamlConfig::CommandUpdated { generators, updaters } = &config.config else { panic!("{config:?}") };
    let checkout = Checkout::new(&files).unwrap();
    let runner = CommandRunner::new();

    let generated = runner.run(&shell(&config, &generators[0], &checkout)).await.unwrap();
    assert_eq!(generated.stdout, "kind: Deployment\nmetadata: {name: web}\nimage: registry.local/web:1.0\n");

    let web = ResourceId::namespaced("staging", "Deployment", "web");
    let image = UpdaterChange::Image { container: "app".into(), image: "registry.local/web:2.0".parse().unwrap() };
    let updater = updaters[0].container_image.as_ref().unwrap();
    let mut cmd = shell(&config, updater, &checkout);
    cmd.env = updater_env(&web, &image);
    runner.run(&cmd).await.unwrap();

    let lock = PolicyChange::Lock(Lock { message: Some("release freeze".into()), user: None });
    for change in UpdaterChange::policies(&lock) {
        let mut cmd = shell(&config, updaters[0].policy.as_ref().unwrap(), &checkout);
        cmd.env = updater_env(&web, &change);
        runner.run(&cmd).await.unwrap();
    }

    assert_eq!(
        checkout.changes(&files).unwrap(),
        [
            FileChange::write("staging/image.txt", "app=registry.local/web:2.0\n"),
            FileChange::write(
                "staging/policies.txt",
                "staging:deployment/web locked=true\n\
                 staging:deployment/web locked_msg=release freeze\n\
                 staging:deployment/web locked_user=(removed)\n"
            ),
        ]
    );
    let regenerated = runner.run(&shell(&config, &generators[0], &checkout)).await.unwrap();
    assert!(regenerated.stdout.ends_with("image: registry.local/web:2.0\n"), "{}", regenerated.stdout);
}

#[tokio::test]
async fn a_failing_generator_names_the_flux_yaml_line() {
    let text = "version: 1\ncommandUpdated:\n  generators:\n    - command: echo fine\n    - command: sh missing.sh\n";
    let config = parse_flux_yaml("staging/.flux.yaml", text).unwrap();
    let FluxYamlConfig::CommandUpdated { generators, .. } = &config.config else { panic!() };
    let checkout = Checkout::new(&repo()).unwrap();
    let err = CommandRunner::new().run(&shell(&config, &generators[1], &checkout)).await.unwrap_err();
    let text = err.to_string();
    assert!(text.starts_with("staging/.flux.yaml:5: `sh missing.sh` failed (exit status: 2"), "{text}");
    assert!(text.contains("missing.sh"), "{text}");
}
