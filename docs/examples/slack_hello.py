"""Slack example: a signed ``/hello`` slash command that answers and posts.

``python docs/examples/slack_hello.py`` starts the local Slack stand-in, runs
the service on a free loopback port (no broker needed: it has no AMQP
extension), posts one signed command as Slack would, and prints the reply
and the notice the stand-in received.
"""

import eventlet

eventlet.monkey_patch()

from sfsync.extensions.slack import (  # noqa: E402
    Reply,
    SlackNotifier,
    SlashCommand,
    slash_command,
)


class HelloService:
    name = "hello"

    notices = SlackNotifier()

    @slash_command("/hello")
    def hello(self, command: SlashCommand) -> Reply:
        self.notices.post(f"{command.user_name} said hello")
        return Reply(f"Hello, <@{command.user_id}>!", in_channel=True)


def main() -> None:
    from nameko.containers import ServiceContainer

    from sfsync.testing.slack import (
        TEST_SIGNING_SECRET,
        SlackStandIn,
        command_url,
        post_slash_command,
        slack_section,
        web_server_url,
    )

    with SlackStandIn() as slack:
        config = {"WEB_SERVER_ADDRESS": "127.0.0.1:0", "SLACK": slack_section(slack)}
        container = ServiceContainer(HelloService, config)
        container.start()
        try:
            url = command_url(web_server_url(container), "/hello")
            response = post_slash_command(
                url, TEST_SIGNING_SECRET, "/hello", user_id="U1", user_name="ada"
            )
            print("reply:", response.json())
            print("notices:", slack.messages())
        finally:
            container.stop()


if __name__ == "__main__":
    main()
