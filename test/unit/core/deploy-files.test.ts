import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DCLinter } from 'dclint';
import { parse as parseYaml } from 'yaml';
import { describe, expect, it } from 'vitest';
import { buildProgram } from '../../../src/cli/main.js';
import { REPO } from '../../helpers/harness.js';

// No container engine runs here: these checks keep docker-compose.yml and the Dockerfile valid and
// in step with the CLI and the configuration.

const COMPOSE = join(REPO, 'docker-compose.yml');

interface Service {
  image?: string;
  build?: unknown;
  command?: string[];
  environment?: Record<string, string>;
  profiles?: string[];
  ports?: string[];
  healthcheck?: unknown;
  deploy?: { replicas?: unknown };
  depends_on?: Record<string, { condition: string; required?: boolean }>;
}
const compose = parseYaml(readFileSync(COMPOSE, 'utf8'), { merge: true }) as {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
};
const services = compose.services;
/** The services running the app image: every one of them runs a `retrain` command. */
const appServices = Object.entries(services).filter(([, s]) => s.build !== undefined);

describe('docker-compose.yml', () => {
  it('is valid against the Compose specification (dclint schema check, and its error rules)', () => {
    const linter = new DCLinter({
      // Layout preferences (key and service order) are not validity.
      rules: { 'service-keys-order': 0, 'services-alphabetical-order': 0, 'top-level-properties-order': 0 },
      quiet: true,
      debug: false,
      exclude: [],
    });
    const [result] = linter.lintFiles([COMPOSE], false);
    const messages: { line: number; message: string; rule: string }[] = result!.messages;
    expect(messages.map((m) => `${m.line}: ${m.message} (${m.rule})`)).toEqual([]);
  });

  it('brings up redis with persistence, scalable workers, the scheduler, the dashboard; MinIO behind a profile', () => {
    expect(services.redis!.image).toMatch(/^redis:7/);
    expect(services.redis!.command).toEqual(expect.arrayContaining(['--appendonly', 'yes']));
    expect(services.redis!.healthcheck).toBeDefined();
    expect(Object.keys(compose.volumes)).toEqual(expect.arrayContaining(['redis-data', 'retrain-data']));
    expect(services.worker!.command).toEqual(['worker']);
    expect(services.worker!.deploy?.replicas).toBeDefined();
    expect(services.scheduler!.command).toEqual(['scheduler']);
    expect(services.dashboard!.command).toEqual(['dashboard', '--port', '3000']);
    // Published on the host's loopback only.
    expect(services.dashboard!.ports).toEqual(['127.0.0.1:3000:3000']);
    expect(services.minio!.profiles).toEqual(['s3']);
    for (const [name, s] of appServices) {
      expect(s.depends_on?.redis?.condition, name).toBe('service_healthy');
      expect(s.environment?.REDIS_URL, name).toBe('redis://redis:6379');
    }
  });

  it('runs only commands and flags the CLI has', () => {
    const program = buildProgram();
    expect(appServices.length).toBeGreaterThanOrEqual(3);
    for (const [name, s] of appServices) {
      const [command, ...args] = s.command ?? [];
      const cmd = program.commands.find((c) => c.name() === command);
      expect(
        cmd,
        `service ${name}: \`retrain ${command}\` is not a command of src/cli/main.ts`,
      ).toBeDefined();
      for (const flag of args.filter((a) => a.startsWith('--'))) {
        expect(
          cmd!.options.some((o) => o.long === flag),
          `service ${name}: \`retrain ${command}\` has no ${flag}`,
        ).toBe(true);
      }
    }
  });

  it('passes only environment variables retrain reads, and never a literal secret', () => {
    const sources = [
      'src/config/load.ts',
      'src/config/schema.ts',
      'src/storage/index.ts',
      'src/storage/s3.ts',
      'src/compute/factory.ts',
    ]
      .concat(['dashboards/auth.ts', 'src/cli/dashboard.ts', 'src/notify/index.ts'])
      .map((f) => readFileSync(join(REPO, f), 'utf8'))
      .join('\n');
    for (const [name, s] of appServices) {
      for (const [key, value] of Object.entries(s.environment ?? {})) {
        expect(sources.includes(key), `service ${name}: ${key} is not read by retrain`).toBe(true);
        if (/KEY|SECRET|PASSWORD|TOKEN/.test(key)) {
          expect(value, `service ${name}: ${key} must come from the environment`).toMatch(
            /^\$\{[A-Z0-9_]+:-\}$/,
          );
        }
      }
    }
  });
});

describe('Dockerfile', () => {
  const dockerfile = readFileSync(join(REPO, 'Dockerfile'), 'utf8');
  const pkg = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as {
    engines: { node: string };
    dependencies: Record<string, string>;
  };

  it('builds on a Node the package supports, runs as a non-root user, through bin/retrain.mjs', () => {
    const from = /^FROM node:(\d+)-bookworm-slim$/m.exec(dockerfile);
    expect(from, 'FROM node:<major>-bookworm-slim').not.toBeNull();
    expect(Number(from![1])).toBeGreaterThanOrEqual(Number(/\d+/.exec(pkg.engines.node)![0]));
    expect(dockerfile).toMatch(/^USER (?!root)\w+$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \[.*"node", "\/app\/bin\/retrain\.mjs"\]$/m);
  });

  it('installs production dependencies only, which hold what the CLI needs at run time (tsx)', () => {
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(pkg.dependencies.tsx).toBeDefined();
    expect(readFileSync(join(REPO, 'bin/retrain.mjs'), 'utf8')).toMatch(/from 'tsx\/esm\/api'/);
  });

  it('copies every source folder the CLI imports, and installs what the local driver runs', () => {
    for (const dir of ['bin', 'src', 'queues', 'processors', 'scheduler', 'dashboards', 'recipes']) {
      expect(dockerfile, dir).toMatch(new RegExp(`^COPY ${dir} \\./${dir}$`, 'm'));
    }
    const apt = /apt-get install[^\n]*/.exec(dockerfile)![0];
    for (const p of ['python3', 'coreutils', 'util-linux', 'tini']) expect(apt).toContain(p);
  });
});
