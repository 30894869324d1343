import { render, screen } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { Verdict } from '@/client/schema';
import { VerdictBanner } from '@/features/identify/components/verdict-banner';

const CASES: { verdict: Verdict; title: RegExp; role: 'alert' | 'status'; words: RegExp }[] = [
  { verdict: 'dangerous', title: /^DANGEROUS$/, role: 'alert', words: /do not eat it/i },
  { verdict: 'edible', title: /likely an edible species/i, role: 'status', words: /never eat a wild mushroom/i },
  { verdict: 'uncertain', title: /^uncertain$/i, role: 'status', words: /treat it as poisonous/i },
  { verdict: 'not_a_mushroom', title: /no mushroom found/i, role: 'status', words: /does not look like a mushroom/i },
];

describe('VerdictBanner', () => {
  it.each(CASES)('shows the $verdict verdict in words, with an icon and its own style', ({ verdict, title, role, words }) => {
    render(<VerdictBanner verdict={verdict} message="The API's sentence." />);
    const banner = screen.getByRole(role);
    expect(banner).toHaveAttribute('data-verdict', verdict);
    expect(banner).toHaveClass(`verdict--${verdict}`);
    expect(screen.getByRole('heading', { level: 2 })).toHaveTextContent(title);
    expect(banner).toHaveTextContent(words);
    expect(banner).toHaveTextContent("The API's sentence.");
    // The icon is decorative: the words carry the meaning for screen readers.
    const icon = banner.querySelector('svg');
    expect(icon).not.toBeNull();
    expect(icon).toHaveAttribute('aria-hidden', 'true');
  });

  it('never lets an edible verdict read as a promise', () => {
    render(<VerdictBanner verdict="edible" message="" />);
    expect(screen.getByRole('status')).not.toHaveTextContent(/safe to eat/i);
    expect(screen.getByRole('status')).toHaveTextContent(/expert/i);
  });

  it('moves focus to the verdict when asked, for keyboard and screen-reader users', () => {
    render(<VerdictBanner verdict="dangerous" message="" focusOnMount />);
    expect(screen.getByRole('heading', { name: 'DANGEROUS' })).toHaveFocus();
  });
});
