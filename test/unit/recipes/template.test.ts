import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { RecipeError } from '../../../src/errors.js';
import {
  checkPlaceholderContext,
  listPlaceholders,
  renderCommand,
  shellQuote,
  validateVarName,
  validateVarValue,
} from '../../../src/recipes/template.js';

/** Runs `cmd` with bash and returns the argv /usr/bin/printf received (NUL-separated). */
function argvSeen(cmd: string): string[] {
  const out = execFileSync('bash', ['-c', cmd], { encoding: 'utf8' });
  return out.split('\0').slice(0, -1);
}

describe('shellQuote', () => {
  it('always single-quotes, escaping quotes POSIX style', () => {
    expect(shellQuote('')).toBe("''");
    expect(shellQuote('abc')).toBe("'abc'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
  });

  it('refuses NUL bytes', () => {
    expect(() => shellQuote('a\0b')).toThrow(RecipeError);
  });
});

describe('renderCommand', () => {
  const marker = `/tmp/pwned-${randomBytes(6).toString('hex')}`;
  const hostile = [
    `$(touch ${marker})`,
    `\`touch ${marker}\``,
    `x; touch ${marker}`,
    `x\ntouch ${marker}`,
    `x' ; touch ${marker}; echo '`,
    `x" ; touch ${marker}; echo "`,
    `x && touch ${marker} || touch ${marker}`,
    `$HOME * ?`,
    `a\\b | touch ${marker} > ${marker}`,
    `-n`,
    `'`,
    `"`,
    ``,
  ];

  it.each(hostile)('keeps %j literal: the program sees it as one argument, nothing runs', (value) => {
    const cmd = renderCommand(`/usr/bin/printf '%s\\0' {{v}} {{ w }}`, { v: value, w: 'end' });
    expect(argvSeen(cmd)).toEqual([value, 'end']);
    expect(existsSync(marker)).toBe(false);
  });

  it('names an unknown placeholder', () => {
    expect(() => renderCommand('echo {{nope}}', {})).toThrow(/unknown placeholder \{\{nope\}\}/);
  });

  it('refuses placeholders written inside quotes', () => {
    expect(() => renderCommand('echo "{{v}}"', { v: 'x' })).toThrow(/inside quotes/);
    expect(() => renderCommand("echo '{{v}}'", { v: 'x' })).toThrow(/inside quotes/);
    expect(() => renderCommand('echo `cat {{v}}`', { v: 'x' })).toThrow(/inside quotes/);
    expect(() => checkPlaceholderContext(`echo "a" {{v}} 'b' \\" {{v}}`)).not.toThrow();
  });

  it('lists placeholders once each, in order', () => {
    expect(listPlaceholders('a {{x}} {{ y }} {{x}} {{bad-name}}')).toEqual(['x', 'y']);
  });
});

describe('validateVarValue / validateVarName', () => {
  it('rejects shell syntax and shows the offending characters', () => {
    expect(() => validateVarValue('epochs', '$(touch /tmp/pwned)')).toThrow(
      /recipe variable "epochs" holds characters that are not allowed: "\$" "\(" "\)"/,
    );
    for (const bad of ['`id`', 'a;b', 'a\nb', "a'b", 'a"b', 'a|b', 'a&b', 'a>b', 'a*']) {
      expect(() => validateVarValue('v', bad)).toThrow(RecipeError);
    }
  });

  it('accepts ordinary values and refuses over-long ones', () => {
    for (const ok of ['30', '0.001', 'a b', 'k=v,x:y', 'user@host', '/a/b-c_d', '50%', '1e+21', '']) {
      expect(() => validateVarValue('v', ok)).not.toThrow();
    }
    expect(() => validateVarValue('v', 'a'.repeat(257))).toThrow(/longer than 256/);
  });

  it('checks names and refuses built-ins', () => {
    expect(() => validateVarName('epochs')).not.toThrow();
    expect(() => validateVarName('Epochs')).toThrow(RecipeError);
    expect(() => validateVarName('symbol')).toThrow(/built-in/);
  });
});
