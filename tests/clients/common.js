// Shared helpers for the client flows: settings from the environment, JSON output.
'use strict';

function settings() {
  const need = (name) => {
    const value = process.env[name];
    if (!value) {
      throw new Error(`environment variable ${name} is required`);
    }
    return value;
  };
  return {
    url: need('EMU_URL'),
    username: need('EMU_USERNAME'),
    password: need('EMU_PASSWORD'),
    version: process.env.EMU_API_VERSION || '59.0',
    tag: process.env.EMU_TAG || String(Date.now()),
  };
}

// Resolves with the first `count` values pushed, or rejects after `ms`.
function collector(count, ms, what) {
  const items = [];
  let settle;
  const done = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`timed out waiting for ${what}: got ${items.length}/${count}`)),
      ms,
    );
    settle = () => {
      if (items.length >= count) {
        clearTimeout(timer);
        resolve(items.slice(0, count));
      }
    };
  });
  return {
    push(item) {
      items.push(item);
      settle();
    },
    done,
  };
}

async function run(flow) {
  // A hard stop so a hung client never outlives the Python test's own bound.
  const guard = setTimeout(() => {
    process.stderr.write('flow did not finish in 60 s\n');
    process.exit(3);
  }, 60000);
  try {
    const result = await flow(settings());
    process.stdout.write(JSON.stringify(result) + '\n');
    clearTimeout(guard);
    process.exit(0);
  } catch (err) {
    process.stderr.write(`${err && err.stack ? err.stack : err}\n`);
    process.exit(1);
  }
}

module.exports = { settings, collector, run };
