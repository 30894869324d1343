import { render, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { IdentificationResult } from '@/features/identify/components/identification-result';
import { sortLookalikes } from '@/features/identify/components/lookalike-list';
import { identification } from './fixtures';

describe('IdentificationResult', () => {
  it('lists the top species best first with probability, names and edibility', () => {
    render(<IdentificationResult result={identification('dangerous')} photo={null} isOnline />);
    const items = within(screen.getByTestId('prediction-list')).getAllByRole('listitem');
    expect(items).toHaveLength(3);
    expect(items[0]).toHaveTextContent('Amanita muscaria');
    expect(items[0]).toHaveTextContent('Fly agaric');
    expect(items[0]).toHaveTextContent('91% likely');
    expect(items[0]).toHaveTextContent('Poisonous');
    expect(items[1]).toHaveTextContent('Boletus edulis');
    expect(items[1]).toHaveTextContent('6% likely');
    expect(items[1]).toHaveTextContent('Choice edible');
    expect(items[2]).toHaveTextContent('Edible only when cooked');
    expect(items[0]?.querySelector<HTMLElement>('.bar__fill')?.style.width).toBe('91%');
  });

  it('never claims 0% or 100%', () => {
    const result = identification('dangerous');
    const [first, second] = result.predictions;
    if (!first || !second) throw new Error('fixture has predictions');
    const predictions = [{ ...first, probability: 0.9996 }, { ...second, probability: 0.0004 }];
    render(<IdentificationResult result={{ ...result, predictions }} photo={null} isOnline />);
    const items = within(screen.getByTestId('prediction-list')).getAllByRole('listitem');
    expect(items[0]).toHaveTextContent('Over 99% likely');
    expect(items[1]).toHaveTextContent('Under 1% likely');
  });

  it('shows look-alikes dangerous first, each with the feature that tells it apart', () => {
    render(<IdentificationResult result={identification('dangerous')} photo={null} isOnline />);
    const items = within(screen.getByTestId('lookalike-list')).getAllByRole('listitem');
    expect(items.map((item) => item.dataset.species)).toEqual(['amanita_pantherina', 'amanita_caesarea']);
    expect(items[0]).toHaveTextContent('Deadly');
    // Each side of the feature is named: the predicted species' trait, then the look-alike's.
    expect(items[0]).toHaveTextContent('How to tell Fly agaric from Panther cap:');
    expect(items[0]).toHaveTextContent('Fly agaric:scarlet cap');
    expect(items[0]).toHaveTextContent('Panther cap:brown cap with a rimmed volva at the base');
    expect(items[1]).toHaveTextContent("Caesar's mushroom:yellow gills and no warts");
  });

  it('no mushroom found: only the advice to take another photo', () => {
    render(<IdentificationResult result={identification('not_a_mushroom')} photo={new Blob(['x'], { type: 'image/jpeg' })} isOnline feedbackSlot={<p>feedback form</p>} />);
    expect(screen.getByTestId('verdict-banner')).toHaveAttribute('data-verdict', 'not_a_mushroom');
    expect(screen.queryByTestId('prediction-list')).not.toBeInTheDocument();
    expect(screen.queryByTestId('lookalike-list')).not.toBeInTheDocument();
    expect(screen.queryByText(/poisonous|choice edible/i)).not.toBeInTheDocument();
    expect(screen.queryByRole('button', { name: 'Show where the model looked' })).not.toBeInTheDocument();
    expect(screen.queryByText('feedback form')).not.toBeInTheDocument();
    expect(screen.getByText(/fill the photo with one mushroom/i)).toBeInTheDocument();
    // The judged photo itself stays visible.
    expect(screen.getByTestId('judged-photo')).toBeInTheDocument();
  });

  it('shows the judged photo, with the heat map toggle by it', () => {
    render(<IdentificationResult result={identification('dangerous')} photo={new Blob(['x'], { type: 'image/jpeg' })} isOnline />);
    expect(screen.getByRole('img', { name: 'The photo that was identified' })).toBeInTheDocument();
    expect(screen.getByRole('button', { name: 'Show where the model looked' })).toBeEnabled();
  });

  it('says which one answered: this phone or the server', () => {
    render(<IdentificationResult result={identification('dangerous', { source: 'device' })} photo={null} isOnline={false} />);
    expect(screen.getByTestId('answered-by')).toHaveTextContent('Answered on this phone by model demo 1.');
  });

  it('shows the disclaimer and the model that answered', () => {
    render(<IdentificationResult result={identification('edible')} photo={null} isOnline />);
    expect(screen.getByRole('complementary', { name: 'Important' })).toHaveTextContent(/no app can tell/i);
    expect(screen.getByText('Answered by the server, model demo 1.')).toBeInTheDocument();
  });

  it('says so when the top species has no listed look-alikes', () => {
    render(<IdentificationResult result={identification('uncertain', { lookalikes: [] })} photo={null} isOnline />);
    expect(screen.getByText(/no look-alikes are listed/i)).toBeInTheDocument();
  });

  it('keeps the API order among look-alikes of the same danger', () => {
    const [a, b] = identification('dangerous').lookalikes;
    if (!a || !b) throw new Error('fixture has two look-alikes');
    const safe = [a, { ...a, species: 'second' }];
    expect(sortLookalikes(safe).map((item) => item.species)).toEqual(['amanita_caesarea', 'second']);
    expect(sortLookalikes([a, b]).map((item) => item.species)).toEqual(['amanita_pantherina', 'amanita_caesarea']);
  });

  it('a caution: "do not eat it" first, then the look-alikes it could be, with the photo that tells them apart', () => {
    const result = identification('uncertain', {
      message: "This looks most like the blusher (Amanita rubescens) (80%), but do not eat it: it could be the poisonous panther cap.",
      caution: {
        species: 'amanita_rubescens',
        lookalikes: [
          {
            species: 'amanita_pantherina',
            scientific_name: 'Amanita pantherina',
            common_names: ['panther cap'],
            edibility: 'poisonous',
            probability: 0.05,
            distinguishing_feature: 'flesh bruising pink vs white flesh that never blushes',
            view: 'flesh',
          },
        ],
      },
      possibly_unknown_species: true,
      unknown_species_message: 'This photo may show a species the model was never taught.',
    });
    render(<IdentificationResult result={result} photo={null} isOnline />);
    const banner = screen.getByTestId('verdict-banner');
    expect(banner).toHaveAttribute('data-caution', 'true');
    expect(within(banner).getByRole('heading', { level: 2 })).toHaveTextContent('Do not eat it');
    expect(within(banner).getByTestId('unknown-species')).toHaveTextContent('never taught');
    const caution = screen.getByTestId('caution');
    expect(banner.compareDocumentPosition(caution) & Node.DOCUMENT_POSITION_FOLLOWING).toBeTruthy();
    expect(caution).toHaveTextContent(/panther cap/);
    expect(caution).toHaveTextContent(/the flesh, cut or bruised/);
  });

  it('no caution block without a caution', () => {
    render(<IdentificationResult result={identification('uncertain')} photo={null} isOnline />);
    expect(screen.queryByTestId('caution')).toBeNull();
    expect(screen.getByTestId('verdict-banner')).not.toHaveAttribute('data-caution');
  });
});
