import { render, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { Verdict } from '@/client/schema';
import { CautionBlock, VerdictBanner } from '@/features/identify/components/verdict-banner';

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

describe('the caution and the unknown-species sentence', () => {
  const caution = {
    species: 'cantharellus_cibarius',
    lookalikes: [
      {
        species: 'omphalotus_olearius',
        scientific_name: 'Omphalotus olearius',
        common_names: ["jack-o'-lantern"],
        edibility: 'poisonous' as const,
        probability: 0.04,
        distinguishing_feature: 'blunt forked ridges vs true gills, in clusters on wood',
        view: 'underside' as const,
      },
      {
        species: 'cortinarius_orellanus',
        scientific_name: 'Cortinarius orellanus',
        common_names: ['fool’s webcap'],
        edibility: 'deadly' as const,
        probability: null,
        distinguishing_feature: null,
        view: null,
      },
    ],
  };

  it('says "do not eat it" as an alert when a dangerous look-alike is not ruled out', () => {
    render(<VerdictBanner verdict="uncertain" message="It could be the poisonous jack-o'-lantern." caution={caution} />);
    const banner = screen.getByRole('alert');
    expect(banner).toHaveAttribute('data-verdict', 'uncertain');
    expect(banner).toHaveAttribute('data-caution', 'true');
    expect(screen.getByRole('heading', { level: 2 })).toHaveTextContent(/^Do not eat it$/);
  });

  it('names each look-alike, its edibility, the telling feature and the photo that shows it', () => {
    render(<CautionBlock caution={caution} speciesName="chanterelle" />);
    const block = screen.getByTestId('caution');
    expect(block).toHaveTextContent(/before anyone takes this for chanterelle/i);
    const items = within(block).getAllByRole('listitem');
    expect(items[0]).toHaveTextContent(/Omphalotus olearius/);
    expect(items[0]).toHaveTextContent(/poisonous/i);
    expect(items[0]).toHaveTextContent(/4% likely/);
    expect(items[0]).toHaveTextContent(/blunt forked ridges vs true gills/);
    expect(items[0]).toHaveTextContent(/the underside: gills, pores or teeth/);
    expect(items[1]).toHaveTextContent(/deadly/i);
    expect(items[1]).toHaveTextContent(/never taught this species/);
  });

  it('shows the unknown-species sentence whatever the verdict, and the app’s own for older answers', () => {
    const { unmount } = render(<VerdictBanner verdict="dangerous" message="" unknownSpeciesMessage="The server's sentence." possiblyUnknownSpecies />);
    expect(screen.getByTestId('unknown-species')).toHaveTextContent("The server's sentence.");
    unmount();
    render(<VerdictBanner verdict="uncertain" message="" possiblyUnknownSpecies />);
    expect(screen.getByTestId('unknown-species')).toHaveTextContent(/never taught/);
  });

  it('shows no unknown-species sentence when the answer does not flag one', () => {
    render(<VerdictBanner verdict="edible" message="" />);
    expect(screen.queryByTestId('unknown-species')).toBeNull();
  });
});
