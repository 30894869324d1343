import { render, screen, within } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import { addHistory } from '@/features/history/api/history-store';
import { HistoryList } from '@/features/history/components/history-list';
import { identification } from './fixtures';

describe('history', () => {
  it('a "no mushroom found" answer names no species', async () => {
    await addHistory(identification('not_a_mushroom'), [{ photo: new Blob(['x'], { type: 'image/jpeg' }), thumbnail: null, view: null }]);
    await addHistory(identification('dangerous'), [{ photo: new Blob(['y'], { type: 'image/jpeg' }), thumbnail: null, view: null }]);
    render(<HistoryList version={1} onOpen={() => undefined} />);
    const items = within(await screen.findByTestId('history-list')).getAllByRole('listitem');
    expect(items).toHaveLength(2);
    // Newest first: the fly agaric, then the photo without a mushroom.
    expect(items[0]).toHaveTextContent('Amanita muscaria');
    expect(items[1]).toHaveTextContent('No mushroom found');
    expect(items[1]).not.toHaveTextContent('Amanita muscaria');
  });
});
